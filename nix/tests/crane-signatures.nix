# Compares the argument lists of the crane stand-in (stubs/crane.nix) with the
# real crane source tree at the locked rev (search path entry `crane`, set by
# nix/tests/eval-flake when CRANE_SRC is given). Why: the stand-in's lists were
# written by hand from crane's lib/*.nix; when flake.lock moves crane, this
# says which list no longer matches instead of letting the stand-in drift.
#
# For every stand-in function with a `standInSpec`:
#   - every named argument of the real function (builtins.functionArgs of the
#     function lib/<file> returns) is accepted by the stand-in;
#   - the real arguments without a default are exactly the stand-in's `required`;
#   - every extra name the stand-in accepts (`own`: names the body reads or
#     removes) occurs in the real file, and every crane-wide name (`common`)
#     occurs in crane's lib/*.nix or lib/setupHooks/*.sh.
# Returns the number of functions compared, or throws listing the mismatches.
{ craneSrc, craneLib, lib }:
let
  inherit (builtins) attrNames concatStringsSep elem filter functionArgs readDir readFile;

  libDir = craneSrc + "/lib";
  hookDir = libDir + "/setupHooks";
  allText = concatStringsSep "\n" (
    map (name: readFile (libDir + "/${name}")) (filter (lib.hasSuffix ".nix") (attrNames (readDir libDir)))
    ++ map (name: readFile (hookDir + "/${name}")) (attrNames (readDir hookDir))
  );

  specs = map (name: craneLib.${name}.standInSpec) (filter (name: craneLib.${name} ? standInSpec) (attrNames craneLib));

  # Plain substring test (lib.hasInfix is a regex match, slow on large texts).
  mentions = text: name: builtins.replaceStrings [ name ] [ "" ] text != text;

  problemsOf = spec:
    let
      path = libDir + "/${spec.file}";
      outer = import path;
      # The file is `{ dependencies }: { arguments }: ...`; the dependencies are
      # never forced by functionArgs, so throwing placeholders are enough.
      inner = outer (lib.mapAttrs (dep: _: throw "crane dependency ${dep}") (functionArgs outer));
      real = functionArgs inner;
      text = readFile path;
      accepted = spec.required ++ spec.own ++ spec.common;
      realRequired = filter (name: !real.${name}) (attrNames real);
    in
    map (name: "${spec.file}: the real function takes `${name}`, the stand-in rejects it") (filter (name: !(elem name accepted)) (attrNames real))
    ++ lib.optional (lib.sort lib.lessThan realRequired != lib.sort lib.lessThan spec.required)
      "${spec.file}: required arguments are ${toString realRequired}, the stand-in requires ${toString spec.required}"
    ++ map (name: "${spec.file}: the stand-in accepts `${name}`, which the real file never mentions") (filter (name: !(mentions text name)) spec.own)
    ++ map (name: "crane-wide name `${name}` occurs nowhere in crane's lib/") (filter (name: !(mentions allText name)) spec.common);

  problems = lib.unique (lib.concatMap problemsOf specs);
in
if problems == [ ] then builtins.length specs
else throw "the crane stand-in (nix/tests/stubs/crane.nix) does not match CRANE_SRC:\n  ${concatStringsSep "\n  " problems}"
