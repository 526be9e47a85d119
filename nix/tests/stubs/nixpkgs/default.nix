# Stand-in for `import nixpkgs { ... }` (nixpkgs' pkgs/top-level/impure.nix):
# the fake `nixpkgs` flake input of nix/tests/eval-flake.nix has this directory as
# its outPath, so nix/default.nix's `import nixpkgs { inherit system; overlays = ...; }`
# lands here and gets the stand-in pkgs of ../pkgs.nix.
#
# Arguments as pkgs/top-level/impure.nix and pkgs/top-level/default.nix take them
# (knowledge): localSystem or system, crossSystem, config, overlays,
# crossOverlays, stdenvStages. `config` is not modelled and must stay empty.
args:
let
  lib = import ../lib.nix;
  checked = (import ../derivation.nix { inherit lib; system = "none"; }).checkArgs
    {
      fn = "import nixpkgs";
      source = "pkgs/top-level/impure.nix";
      optional = [ "localSystem" "system" "crossSystem" "config" "overlays" "crossOverlays" "stdenvStages" ];
    }
    args;
  system = checked.system or checked.localSystem.system or checked.localSystem or (throw "import nixpkgs: give `system` or `localSystem` (this evaluation has no builtins.currentSystem to fall back on)");
in
assert lib.assertMsg ((checked.config or { }) == { }) "nix/tests stand-in: nixpkgs config is not modelled";
assert lib.assertMsg (builtins.isList (checked.overlays or [ ])) "import nixpkgs: overlays must be a list";
import ../pkgs.nix {
  inherit lib system;
  overlays = checked.overlays or [ ];
  crossSystem = checked.crossSystem or null;
}
