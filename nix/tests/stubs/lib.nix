# The real nixpkgs lib (nix-community/nixpkgs.lib, the `lib` tree of the locked
# nixpkgs), found through the Nix search path entry `nixpkgs-lib`
# (nix/tests/eval-flake passes -I nixpkgs-lib=$NIXPKGS_LIB_SRC).
#
# Why the one polyfill: lib.filesystem.pathType is builtins.readFileType, which
# Nix 2.8 lacks (it arrived in Nix 2.14), and lib.fileset needs it. The
# polyfill asks readDir of the parent directory, which is what lib did before
# readFileType existed. The search-path roots themselves are known directories
# (restrict-eval forbids reading their parents).
let
  inherit (builtins) filter head nixPath;
  entry = prefix:
    let found = filter (e: e.prefix == prefix) nixPath;
    in if found == [ ] then throw "nix/tests: no `${prefix}` entry in the Nix search path (run nix/tests/eval-flake)" else (head found).path;
  real = import (entry "nixpkgs-lib" + "/lib");
  roots = map (e: e.path) nixPath;
  pathType = path:
    if builtins.elem (toString path) roots || dirOf path == path then "directory"
    else (builtins.readDir (dirOf path)).${baseNameOf path};
in
if builtins ? readFileType then real
else
  real.extend (_: prev: {
    inherit pathType;
    filesystem = prev.filesystem // { inherit pathType; };
  })
