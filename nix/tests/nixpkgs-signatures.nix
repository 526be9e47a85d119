# Compares the nixpkgs stand-ins with a real nixpkgs tree (search path entry
# `nixpkgs`, set by nix/tests/eval-flake when NIXPKGS_SRC is given). Why: the
# argument lists in stubs/nixpkgs-signatures.nix and the package names in
# stubs/nixpkgs-packages.nix were written by hand from copies of nixpkgs that
# are not the locked rev; with the locked tree, this proves them or names the
# difference. It evaluates the real nixpkgs, which needs the Nix version that
# nixpkgs requires (Nix 2.8 cannot), so it is opt-in.
#
#   - every function: the real one exists at `attrPath`; every argument it
#     names (lib.functionArgs) is accepted by the stand-in; unless it takes
#     `...` (rest) or the list is marked loose, the stand-in accepts nothing
#     else; the arguments without a default are the stand-in's `required`
#     (for `override`: the ones with a default are `withDefault`);
#   - every package name exists in pkgs (python ones in python3Packages), with
#     at least the outputs the stand-in gives it.
# Returns a summary string, or throws listing every difference.
{ lib, nixpkgsSrc, system }:
let
  inherit (builtins) attrNames concatStringsSep elem filter length;

  real = import nixpkgsSrc { inherit system; config = { }; overlays = [ ]; };
  signatures = import ./stubs/nixpkgs-signatures.nix;
  stubs = import ./stubs/derivation.nix { inherit lib system; };
  inherit (import ./stubs/nixpkgs-packages.nix { inherit lib; }) packageNames pythonPackageNames;

  sorted = lib.sort lib.lessThan;

  functionProblems = name:
    let
      sig = signatures.${name};
      where = "pkgs.${concatStringsSep "." sig.attrPath} (${name} in stubs/nixpkgs-signatures.nix)";
      f = lib.attrByPath sig.attrPath null real;
      args = lib.functionArgs f;
      names = attrNames args;
      # What the stand-in accepts (stubs/pkgs.nix checkSig): with `...`, also the
      # mkDerivation attributes and ALL_CAPS environment variables.
      accepts = arg:
        elem arg (sig.required ++ sig.optional ++ (sig.extra or [ ]))
        || (sig.rest or false) && (elem arg stubs.mkDerivationAttrs || stubs.isEnvVarName arg);
      withDefault = filter (arg: args.${arg}) names;
      withoutDefault = filter (arg: !args.${arg}) names;
    in
    if f == null then [ "${where} does not exist" ]
    else if names == [ ] then [ "${where} has no named arguments to compare (not an attribute-set pattern?)" ]
    else
      map (arg: "${where}: the real function takes `${arg}`, the stand-in rejects it") (filter (arg: !(accepts arg)) names)
      ++ lib.optionals (!(sig.rest or false) && !(sig.loose or false))
        (map (arg: "${where}: the stand-in accepts `${arg}`, the real function does not take it") (filter (arg: !(elem arg names)) (sig.required ++ sig.optional)))
      ++ lib.optional (!(sig.override or false) && !(sig.loose or false) && sorted withoutDefault != sorted sig.required)
        "${where}: required arguments are [ ${toString withoutDefault} ], the stand-in requires [ ${toString sig.required} ]"
      ++ lib.optional ((sig.override or false) && sorted withDefault != sorted sig.withDefault)
        "${where}: arguments with a default are [ ${toString withDefault} ], the stand-in has [ ${toString sig.withDefault} ]";

  packageProblems = name:
    let spec = packageNames.${name};
    in
    if !(real ? ${name}) then [ "pkgs.${name} does not exist (stubs/nixpkgs-packages.nix)" ]
    else
      map (output: "pkgs.${name} has no output `${output}` (stubs/nixpkgs-packages.nix)")
        (filter (output: !(elem output (real.${name}.outputs or [ "out" ]))) (spec.outputs or [ ]));

  pythonProblems = name:
    lib.optional (!(real.python3Packages ? ${name})) "python3Packages.${name} does not exist (stubs/nixpkgs-packages.nix)";

  problems =
    lib.concatMap functionProblems (attrNames signatures)
    ++ lib.concatMap packageProblems (attrNames packageNames)
    ++ lib.concatMap pythonProblems pythonPackageNames;
in
if problems == [ ] then
  "${toString (length (attrNames signatures))} functions, ${toString (length (attrNames packageNames) + length pythonPackageNames)} packages match NIXPKGS_SRC"
else
  throw "the nixpkgs stand-ins differ from NIXPKGS_SRC:\n  ${concatStringsSep "\n  " problems}"
