# Evaluates every output of ../../flake.nix for x86_64-linux and aarch64-linux
# with Nix 2.8, offline, without building: a test, run by nix/tests/eval-flake.
#
# Why: `nix flake check` needs a newer Nix, the network and a store; this
# machine has none of them. Calling the flake's `outputs` function directly with
# stand-in inputs catches what evaluation catches there: typos, missing
# attributes, wrong argument names to nixpkgs/crane functions, bad
# interpolations in build scripts, an unknown Rust release or target.
#
# Inputs given to `outputs`:
#   nixpkgs       stubs/nixpkgs (`import nixpkgs { ... }` -> stubs/pkgs.nix) with the
#                 real nixpkgs lib (stubs/lib.nix) as `nixpkgs.lib`
#   crane         stubs/crane.nix (`mkLib pkgs`)
#   rust-overlay  the real rust-overlay flake (search path entry `rust-overlay`),
#                 its outputs computed with the stand-in nixpkgs
#   kubenix       the real kubenix tree (search path entry `kubenix`)
#   advisory-db   a made-up store path (crane only interpolates it into a script)
#   self          the outputs plus outPath, like a flake's `self`
# The search path entries (nixpkgs-lib, kubenix, rust-overlay, users-platform)
# are set by nix/tests/eval-flake from NIXPKGS_LIB_SRC, KUBENIX_SRC and
# RUST_OVERLAY_SRC.
#
#   nix-instantiate --eval --strict --json nix/tests/eval-flake.nix -A summary     counts per system
#   nix-instantiate --eval --strict --json nix/tests/eval-flake.nix -A checkNames  checks names
{ systems ? [ "x86_64-linux" "aarch64-linux" ] }:
let
  inherit (builtins) attrNames filter head isAttrs isString length nixPath;

  lib = import ./stubs/lib.nix;
  stubs = import ./stubs/derivation.nix { inherit lib; system = "none"; };

  searchPath = prefix:
    let found = filter (e: e.prefix == prefix) nixPath;
    in if found == [ ] then throw "nix/tests/eval-flake.nix: no `${prefix}` entry in the Nix search path (run nix/tests/eval-flake)" else (head found).path;

  root = ../..;
  flake = import (root + "/flake.nix");

  nixpkgs = {
    _type = "flake";
    outPath = ./stubs/nixpkgs;
    inherit lib;
    legacyPackages = lib.genAttrs systems (system: import ./stubs/nixpkgs { inherit system; });
  };

  rustOverlaySrc = searchPath "rust-overlay";
  rust-overlay = (import (rustOverlaySrc + "/flake.nix")).outputs { self = rust-overlay; inherit nixpkgs; } // {
    _type = "flake";
    outPath = rustOverlaySrc;
  };

  standIns = {
    inherit nixpkgs rust-overlay;
    crane = {
      _type = "flake";
      outPath = "${builtins.storeDir}/${stubs.fakeHash "crane"}-source";
      mkLib = pkgs: import ./stubs/crane.nix { inherit pkgs; };
    };
    kubenix = {
      _type = "flake";
      outPath = searchPath "kubenix";
    };
    advisory-db = {
      outPath = "${builtins.storeDir}/${stubs.fakeHash "advisory-db"}-source";
    };
  };

  # A new flake input needs a stand-in here; say so instead of a confusing error.
  declared = attrNames (flake.inputs or { });
  unknownInputs = filter (name: !(standIns ? ${name})) declared;

  self = outputs // {
    _type = "flake";
    outPath = root;
    inputs = standIns;
    lastModified = 0;
  };
  outputs =
    if unknownInputs != [ ] then
      throw "flake.nix has input(s) ${toString unknownInputs} without a stand-in in nix/tests/eval-flake.nix"
    else flake.outputs (standIns // { inherit self; });

  # --- forcing ------------------------------------------------------------------
  fail = what: msg: throw "${what}: ${msg}";

  isDrv = v: isAttrs v && (v.type or null) == "derivation";
  forceDrv = what: v:
    if !(isDrv v) then fail what "not a derivation"
    else builtins.seq v.drvPath (builtins.seq v.outPath (isString v.name));

  forceDrvSet = what: set:
    if !(isAttrs set) then fail what "not an attribute set"
    else builtins.all (name: forceDrv "${what}.${name}" set.${name}) (attrNames set);

  # `nix flake check`: an app is { type = "app"; program = <store path>; }.
  forceApp = what: app:
    if !(isAttrs app) || (app.type or null) != "app" then fail what "not an app ({ type = \"app\"; program = ...; })"
    else if !(isString app.program) || !(lib.hasPrefix builtins.storeDir app.program) then fail what "program is not a store path"
    else stubs.forceDeep app;

  perSystem = {
    packages = what: set: forceDrvSet what set;
    checks = what: set: forceDrvSet what set;
    devShells = what: set: forceDrvSet what set;
    formatter = forceDrv;
    apps = what: set: isAttrs set && builtins.all (name: forceApp "${what}.${name}" set.${name}) (attrNames set);
    legacyPackages = what: set: stubs.forceDeep (set.imageRefs or (fail what "no imageRefs")) && stubs.forceDeep set;
  };

  # Every output the flake has must be known here, so none goes unevaluated.
  unknownOutputs = filter (name: !(perSystem ? ${name})) (attrNames outputs);

  count = v: if isDrv v then 1 else length (attrNames v);

  forceSystem = system:
    builtins.all
      (name:
        let
          what = "${name}.${system}";
          value = outputs.${name}.${system} or (fail what "missing");
        in
        perSystem.${name} what value)
      (attrNames outputs);

  # With a `crane` search path entry (CRANE_SRC), the crane stand-in's argument
  # lists are compared with the real crane source (crane-signatures.nix).
  craneEntries = filter (e: e.prefix == "crane") nixPath;
  craneSignatures =
    if craneEntries == [ ] then "not checked (CRANE_SRC not set)"
    else
      "${toString (import ./crane-signatures.nix {
        inherit lib;
        craneSrc = (head craneEntries).path;
        craneLib = standIns.crane.mkLib (import ./stubs/nixpkgs { system = head systems; });
      })} crane functions match CRANE_SRC";

  # With a `nixpkgs` search path entry (NIXPKGS_SRC, a full nixpkgs tree), the
  # nixpkgs stand-ins are compared with it (nixpkgs-signatures.nix).
  nixpkgsEntries = filter (e: e.prefix == "nixpkgs") nixPath;
  nixpkgsSignatures =
    if nixpkgsEntries == [ ] then "not checked (NIXPKGS_SRC not set)"
    else
      import ./nixpkgs-signatures.nix {
        inherit lib;
        nixpkgsSrc = (head nixpkgsEntries).path;
        system = head systems;
      };

  summary =
    if unknownOutputs != [ ] then
      throw "flake output(s) ${toString unknownOutputs} are not evaluated by nix/tests/eval-flake.nix; add them there"
    else
      lib.genAttrs systems (system:
        assert forceSystem system;
        lib.mapAttrs (_name: value: count value.${system}) outputs
        // { imageRefs = length (attrNames outputs.legacyPackages.${system}.imageRefs); });
in
{
  # Outputs evaluated per system, after forcing every one of them, and the
  # results of the crane and nixpkgs signature comparisons.
  summary = summary // { inherit craneSignatures nixpkgsSignatures; };

  # The flake's outputs as evaluated here, for looking into a stand-in's result:
  # nix-instantiate --eval ... -A outputs.packages.x86_64-linux.default.drvAttrs
  inherit outputs;

  # The attribute names of checks.<system>, per system (for comparing with
  # scripts/check's stages). Nothing is forced but the names.
  checkNames = lib.genAttrs systems (system: attrNames outputs.checks.${system});
}
