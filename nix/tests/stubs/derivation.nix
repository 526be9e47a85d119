# Fake derivations and argument checks shared by the nixpkgs and crane stand-ins
# (nix/tests/stubs/pkgs.nix, nix/tests/stubs/crane.nix).
#
# Why: this machine has Nix 2.8 and no nixpkgs checkout, so the flake cannot be
# evaluated against the real nixpkgs. The stand-ins replace each nixpkgs/crane
# function the flake calls with one that
#   1. rejects argument names the real function does not take (`checkArgs`),
#   2. rejects values that `builtins.derivation` could not turn into environment
#      variables (`checkDrvAttrs`: functions, plain attribute sets, ...), and
#   3. returns a fake derivation whose `outPath`/`drvPath` force every argument
#      deeply (`forceDeep`), so a missing attribute or a bad interpolation inside a
#      build script fails the evaluation like `nix flake check` would.
# Nothing here builds or writes to the store: store paths are made up.
{ lib, system }:
let
  inherit (builtins) attrNames concatStringsSep elem filter isAttrs isFunction isList typeOf;

  # Env-var-like names (CARGO_BUILD_TARGET, NEXTEST_SHOW_PROGRESS, ...): every
  # function that passes unknown attributes on to mkDerivation exports them.
  isEnvVarName = name: builtins.match "[A-Z][A-Z0-9_]*" name != null;

  isDerivation = v: isAttrs v && (v.type or null) == "derivation";

  # Forces a value completely, stopping at derivations (their own drvPath forces
  # their arguments) and at attribute sets with an outPath (sources, store paths).
  forceDeep = v:
    if isDerivation v then builtins.seq v.drvPath true
    else if isAttrs v && v ? outPath then builtins.seq "${v}" true
    else if isAttrs v then builtins.all (name: forceDeep v.${name}) (attrNames v)
    else if isList v then builtins.all forceDeep v
    else builtins.seq v true;

  suggest = allowed: name:
    let close = filter (candidate: lib.strings.levenshteinAtMost 2 name candidate) allowed;
    in lib.optionalString (close != [ ]) " (did you mean ${concatStringsSep " or " close}?)";

  # checkArgs { fn = "pkgs.writeShellApplication"; source = "..."; required = [ ]; optional = [ ]; } args
  # Returns args, or throws naming the unknown or missing argument. With
  # `envVars = true`, ALL_CAPS names pass too (mkDerivation exports them).
  checkArgs = { fn, source, required ? [ ], optional ? [ ], envVars ? false }: args:
    let
      allowed = required ++ optional;
      given = if isAttrs args then attrNames args else [ ];
      unknown = filter (name: !(elem name allowed) && !(envVars && isEnvVarName name)) given;
      missing = filter (name: !(elem name given)) required;
    in
    if !(isAttrs args) then throw "${fn}: expected an attribute set of arguments, got a ${typeOf args}"
    else if unknown != [ ] then
      throw "${fn}: unexpected argument ${concatStringsSep ", " (map (name: "`${name}`${suggest allowed name}") unknown)}; the real function (${source}) does not take it"
    else if missing != [ ] then
      throw "${fn}: missing required argument ${concatStringsSep ", " (map (name: "`${name}`") missing)} (${source})"
    else args;

  # What builtins.derivation accepts as an attribute value (it becomes an
  # environment variable): strings, paths, numbers, booleans, null, derivations or
  # anything with outPath/__toString, and lists of those.
  coercible = v:
    if isAttrs v then v ? outPath || v ? __toString
    else if isList v then builtins.all coercible v
    else !(isFunction v);

  # mkDerivation removes these before calling builtins.derivation.
  notExported = [ "meta" "passthru" "env" "pos" ];

  checkDrvAttrs = fn: attrs:
    let
      structured = attrs.__structuredAttrs or false;
      bad = filter (name: !(elem name notExported) && !structured && !(coercible attrs.${name})) (attrNames attrs);
      env = attrs.env or { };
      badEnv = filter
        (name: let v = env.${name}; in !(builtins.isString v || builtins.isBool v || builtins.isInt v || isDerivation v))
        (attrNames env);
      clash = filter (name: attrs ? ${name}) (attrNames env);
    in
    if bad != [ ] then
      throw "${fn}: derivation attribute ${concatStringsSep ", " (map (name: "`${name}` (a ${typeOf attrs.${name}})") bad)} cannot be passed to builtins.derivation"
    else if !(isAttrs env) then throw "${fn}: `env` must be an attribute set"
    else if badEnv != [ ] then
      throw "${fn}: env.${builtins.head badEnv} must be a string, boolean, integer or derivation (pkgs/stdenv/generic/make-derivation.nix)"
    else if clash != [ ] then
      throw "${fn}: `${builtins.head clash}` is set both in `env` and as a derivation attribute (pkgs/stdenv/generic/make-derivation.nix rejects that)"
    else attrs;

  # A fake store path hash: 32 hex digits of a hash of the builder and name, with
  # `e` (not in Nix's base-32 alphabet) replaced, so it looks like a real one.
  fakeHash = seed: builtins.replaceStrings [ "e" ] [ "z" ] (builtins.substring 0 32 (builtins.hashString "sha256" seed));

  # mkDrv { fn; name; args; } returns a fake derivation. `args` is forced deeply
  # when outPath or drvPath is read. passthru attributes land on the result like
  # in nixpkgs; `meta` is always present.
  mkDrv = { fn, name, args, meta ? { }, passthru ? { }, outputs ? [ "out" ], version ? null, pname ? null }:
    let
      checkedName =
        if builtins.isString name && name != "" then name
        else throw "${fn}: the derivation name must be a non-empty string";
      hash = fakeHash "${system}:${fn}:${checkedName}:${toString (attrNames args)}";
      forced = forceDeep args && forceDeep meta;
      pathOf = output: builtins.seq forced "${builtins.storeDir}/${hash}-${checkedName}${lib.optionalString (output != "out") "-${output}"}";
      common = passthru // {
        type = "derivation";
        name = checkedName;
        inherit system outputs meta;
        drvPath = builtins.seq forced "${builtins.storeDir}/${hash}-${checkedName}.drv";
        drvAttrs = args;
        # Marks fakes, so a test can tell them from anything real.
        isStandIn = true;
      }
        // lib.optionalAttrs (version != null) { inherit version; }
        // lib.optionalAttrs (pname != null) { inherit pname; };
      outputAttrs = lib.genAttrs outputs (output: self // { outPath = pathOf output; outputName = output; });
      self = common // outputAttrs // { outPath = pathOf (builtins.head outputs); outputName = builtins.head outputs; };
    in
    self;
  # Attributes stdenv.mkDerivation gives a meaning to (pkgs/stdenv/generic/make-derivation.nix
  # and setup.sh; knowledge). Functions that pass unknown attributes on to
  # mkDerivation (symlinkJoin, mkShell, crane's builders) accept these, their own
  # arguments and ALL_CAPS environment variables, nothing else.
  mkDerivationAttrs = [
    "name"
    "pname"
    "version"
    "src"
    "srcs"
    "sourceRoot"
    "patches"
    "outputs"
    "meta"
    "passthru"
    "env"
    "strictDeps"
    "__structuredAttrs"
    "nativeBuildInputs"
    "buildInputs"
    "propagatedBuildInputs"
    "propagatedNativeBuildInputs"
    "depsBuildBuild"
    "depsBuildBuildPropagated"
    "depsBuildTarget"
    "depsBuildTargetPropagated"
    "depsHostHost"
    "depsHostHostPropagated"
    "depsTargetTarget"
    "depsTargetTargetPropagated"
    "nativeCheckInputs"
    "checkInputs"
    "nativeInstallCheckInputs"
    "installCheckInputs"
    "doCheck"
    "doInstallCheck"
    "dontUnpack"
    "dontPatch"
    "dontConfigure"
    "dontBuild"
    "dontInstall"
    "dontFixup"
    "dontStrip"
    "dontPatchELF"
    "dontPatchShebangs"
    "phases"
    "prePhases"
    "preConfigurePhases"
    "preBuildPhases"
    "preInstallPhases"
    "preFixupPhases"
    "preDistPhases"
    "postPhases"
    "unpackPhase"
    "patchPhase"
    "configurePhase"
    "buildPhase"
    "checkPhase"
    "installPhase"
    "fixupPhase"
    "installCheckPhase"
    "distPhase"
    "preUnpack"
    "postUnpack"
    "prePatch"
    "postPatch"
    "preConfigure"
    "postConfigure"
    "preBuild"
    "postBuild"
    "preCheck"
    "postCheck"
    "preInstall"
    "postInstall"
    "preFixup"
    "postFixup"
    "preInstallCheck"
    "postInstallCheck"
    "preDist"
    "postDist"
    "shellHook"
    "buildCommand"
    "passAsFile"
    "configureFlags"
    "makeFlags"
    "buildFlags"
    "checkFlags"
    "installFlags"
    "checkTarget"
    "installTargets"
    "enableParallelBuilding"
    "enableParallelChecking"
    "enableParallelInstalling"
    "separateDebugInfo"
    "hardeningEnable"
    "hardeningDisable"
    "preferLocalBuild"
    "allowSubstitutes"
    "outputHash"
    "outputHashAlgo"
    "outputHashMode"
    "allowedReferences"
    "allowedRequisites"
    "disallowedReferences"
    "disallowedRequisites"
    "requiredSystemFeatures"
    "impureEnvVars"
    "exportReferencesGraph"
    "setupHook"
    "pos"
  ];


in
{
  inherit mkDerivationAttrs;
  inherit isEnvVarName isDerivation forceDeep checkArgs checkDrvAttrs coercible mkDrv fakeHash;
}
