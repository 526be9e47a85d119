# Stand-in for the `crane` flake input: `mkLib pkgs` returns a craneLib whose
# functions check their arguments and return fake derivations
# (nix/tests/stubs/derivation.nix). Used by nix/tests/eval-flake.nix.
#
# Why a stand-in: the real crane needs a real nixpkgs (splicing, makeScope,
# stdenv, vendoring fetchers), which Nix 2.8 on this machine does not have. The
# stand-in keeps what can go wrong in the flake's calls to crane:
#   - argument names: each function accepts only the named arguments of the real
#     function, the attributes its body reads (`args.foo`, `args ? foo`), the
#     attributes crane's mkCargoDerivation and setup hooks consume, the stdenv
#     mkDerivation attributes listed in stubs/pkgs.nix (`mkDerivationAttrs`) and
#     ALL_CAPS environment variables. Real crane passes any other name on to
#     mkDerivation silently, so `cargoArtifact = ...` (missing s) would only
#     export a useless variable; here it fails the evaluation. To use a new crane
#     or mkDerivation option, add it to the list below with its source.
#   - required arguments (cargoArtifacts for clippy/nextest, src and advisory-db
#     for cargoAudit, ...), the toolchain (the real rust-overlay toolchain, forced
#     through every derivation's nativeBuildInputs), Cargo.toml/Cargo.lock being
#     present in `src` and parseable.
# Signatures come from ipetkov/crane at the locked rev
# 2c71e194474d13de031d729b729c968ddbe3507f (files named per function below).
{ pkgs }:
let
  inherit (pkgs) lib;
  stubs = import ./derivation.nix { inherit (pkgs) lib system; };
  inherit (import ./nixpkgs-signatures.nix) mkShell;
  inherit (builtins) elem isAttrs isFunction pathExists readFile;
  inherit (stubs) checkArgs checkDrvAttrs mkDrv isDerivation;

  rev = "2c71e194474d13de031d729b729c968ddbe3507f";
  src = file: "crane lib/${file} @ ${rev}";

  # Attributes every mkCargoDerivation-based function consumes besides its own
  # named arguments: lib/mkCargoDerivation.nix (named args, `args.*` reads and the
  # removeAttrs list), lib/vendorCargoDeps.nix, lib/mkDummySrc.nix,
  # lib/crateNameFromCargoToml.nix and the variables read by lib/setupHooks/*.sh.
  craneCommon = [
    "cargoArtifacts"
    "buildPhaseCargoCommand"
    "checkPhaseCargoCommand"
    "installPhaseCommand"
    "cargoVendorDir"
    "doInstallCargoArtifacts"
    "pnameSuffix"
    "cargoLock"
    "cargoLockContents"
    "cargoLockParsed"
    "outputHashes"
    "doIncludeCrossToolchainEnv"
    "cargoToml"
    "cargoTomlContents"
    "overrideVendorCargoPackage"
    "overrideVendorGitCheckout"
    "dummyrs"
    "dummyBuildrs"
    "extraDummyScript"
    "cleanCargoTomlFilter"
    "installCargoArtifactsMode"
    "doNotLinkInheritedArtifacts"
    "doNotPostBuildInstallCargoBinaries"
    "doNotRemoveReferencesToVendorDir"
    "doNotRemoveReferencesToRustToolchain"
    "doNotReplaceCargoLock"
    "doCompressAndInstallFullArchive"
    "zstdCompressionExtraArgs"
    "doRemapPathPrefix"
  ];

  # Where the Cargo files of a source live: crane reads them from the original
  # tree of a lib.cleanSourceWith / lib.fileset.toSource result.
  origSrc = s: if isAttrs s && s ? _isLibCleanSourceWith then s.origSrc else s;

  # True when `file` (relative) is part of `s`: it exists in the original tree and
  # the source filters keep it (the real build would not see it otherwise).
  inSource = s: file:
    let
      root = origSrc s;
      path = root + "/${file}";
    in
    pathExists path && (if isAttrs s && s ? filter then s.filter (toString path) "regular" else true);

  # lib/crateNameFromCargoToml.nix: `args:` (any attribute set). The stand-in
  # accepts the attributes it reads plus pname/version, and fails where crane
  # would warn and use a placeholder (missing name or version).
  crateNameFromCargoToml = args:
    let
      fn = "craneLib.crateNameFromCargoToml";
      checked = checkArgs { inherit fn; source = src "crateNameFromCargoToml.nix"; optional = [ "src" "cargoToml" "cargoTomlContents" "pname" "version" ]; } args;
      contents =
        if checked ? cargoTomlContents then checked.cargoTomlContents
        else if checked ? cargoToml then readFile checked.cargoToml
        else if checked ? src && pathExists (origSrc checked.src + "/Cargo.toml") then readFile (origSrc checked.src + "/Cargo.toml")
        else throw "${fn}: no Cargo.toml (set cargoToml, cargoTomlContents or a src with a Cargo.toml)";
      toml = builtins.fromTOML contents;
      pname = toml.package.metadata.crane.name or toml.package.name or toml.workspace.metadata.crane.name
        or (throw "${fn}: Cargo.toml has no package.name (crane would use a placeholder)");
      version =
        let v = toml.package.version or null;
        in if builtins.isString v then v
        else toml.workspace.package.version or (throw "${fn}: Cargo.toml has no package.version (crane would use a placeholder)");
    in
    { inherit pname version; };

  makeLib = toolchain:
    let
      toolchainInputs = [ toolchain.cargo toolchain.rustc ];

      # lib/mkCargoDerivation.nix: builds the fake derivation after the caller's
      # own arguments are removed; the rest must be valid derivation attributes.
      mkCargoDrv = fn: args: extraInputs:
        let
          sources = args.src or null;
          name = args.pname or (crateNameFromCargoToml { src = sources; }).pname;
          version = args.version or (crateNameFromCargoToml { src = sources; }).version;
          lockChecked =
            if args ? cargoVendorDir || args ? cargoLock || args ? cargoLockContents || args ? cargoLockParsed || sources == null
            then true
            else if !(inSource sources "Cargo.lock") then throw "${fn}: Cargo.lock is not part of `src` (crane vendors the dependencies from it)"
            else builtins.isAttrs (builtins.fromTOML (readFile (origSrc sources + "/Cargo.lock")));
          drvArgs = checkDrvAttrs fn (removeAttrs args [ "meta" "passthru" ] // {
            nativeBuildInputs = (args.nativeBuildInputs or [ ]) ++ toolchainInputs ++ extraInputs;
          });
        in
        assert lockChecked;
        mkDrv {
          inherit fn version;
          pname = name;
          name = "${name}${args.pnameSuffix or ""}-${version}";
          args = drvArgs;
          meta = args.meta or { };
          passthru = args.passthru or { };
        };

      # One crane function: `own` are its named arguments (and the names its body
      # reads and removes), `required` those without a default.
      craneFn = { name, file ? "${name}.nix", required ? [ ], own ? [ ], suffix, extraInputs ? [ ], check ? (_: true) }: args:
        let
          fn = "craneLib.${name}";
          checked = checkArgs
            {
              inherit fn required;
              source = src file;
              optional = own ++ craneCommon ++ stubs.mkDerivationAttrs;
              envVars = true;
            }
            args;
        in
        assert check checked;
        mkCargoDrv fn (removeAttrs checked own // lib.optionalAttrs (suffix != "") { pnameSuffix = suffix; }) extraInputs;

      # craneFn spec, callable like the real function; `standInSpec` lets
      # nix/tests/crane-signatures.nix compare the lists with the crane source.
      withSpec = spec: {
        standInSpec = { file = "${spec.name}.nix"; required = [ ]; own = [ ]; common = craneCommon; } // removeAttrs spec [ "check" "extraInputs" "suffix" ];
        __functor = _: craneFn spec;
      };

      # lib/devShell.nix: { checks ? { }, inputsFrom ? [ ], packages ? [ ], ... },
      # the rest goes to pkgs.mkShell (which checks it).
      devShellFn = args:
        let
          fn = "craneLib.devShell";
          checked = checkArgs
            {
              inherit fn;
              source = src "devShell.nix";
              optional = [ "checks" "inputsFrom" "packages" ] ++ mkShell.optional ++ mkShell.extra ++ stubs.mkDerivationAttrs;
              envVars = true;
            }
            args;
        in
        pkgs.mkShell (removeAttrs checked [ "checks" "nativeBuildInputs" ] // {
          inputsFrom = builtins.attrValues (checked.checks or { }) ++ (checked.inputsFrom or [ ]);
          packages = [ toolchain.rustc toolchain.cargo toolchain.clippy toolchain.rustfmt ] ++ (checked.packages or [ ]);
        });

      stringArg = fn: args: name:
        !(args ? ${name}) || builtins.isString args.${name} || throw "craneLib.${fn}: `${name}` must be a string";
    in
    {
      inherit crateNameFromCargoToml;

      # lib/default.nix: `toolchainArg` is a derivation, or a function from a pkgs
      # instance to one (called for each splice; here there is one pkgs).
      overrideToolchain = toolchainArg:
        let
          chosen = if isFunction toolchainArg then toolchainArg pkgs else toolchainArg;
        in
        if isDerivation chosen then makeLib { cargo = chosen; rustc = chosen; clippy = chosen; rustfmt = chosen; }
        else throw "craneLib.overrideToolchain: expected a toolchain derivation or a function `p: <toolchain>`, got a ${builtins.typeOf chosen}";

      # lib/buildDepsOnly.nix
      buildDepsOnly = withSpec {
        name = "buildDepsOnly";
        own = [ "cargoBuildCommand" "cargoCheckCommand" "cargoExtraArgs" "cargoBuildExtraArgs" "cargoTestCommand" "cargoTestExtraArgs" "cargoCheckExtraArgs" "dummySrc" ];
        suffix = "-deps";
      };

      # lib/buildPackage.nix (cargoArtifacts is optional: built with buildDepsOnly)
      buildPackage = withSpec {
        name = "buildPackage";
        own = [ "cargoBuildCommand" "cargoExtraArgs" "cargoBuildExtraArgs" "cargoTestCommand" "cargoTestExtraArgs" ];
        suffix = "";
      };

      # lib/cargoBuild.nix
      cargoBuild = withSpec {
        name = "cargoBuild";
        required = [ "cargoArtifacts" ];
        own = [ "cargoExtraArgs" ];
        suffix = "-build";
      };

      # lib/cargoClippy.nix
      cargoClippy = withSpec {
        name = "cargoClippy";
        required = [ "cargoArtifacts" ];
        own = [ "cargoClippyExtraArgs" "cargoExtraArgs" ];
        suffix = "-clippy";
        check = args: stringArg "cargoClippy" args "cargoClippyExtraArgs";
      };

      # lib/cargoFmt.nix
      cargoFmt = withSpec {
        name = "cargoFmt";
        own = [ "cargoExtraArgs" "rustFmtExtraArgs" ];
        suffix = "-fmt";
      };

      # lib/cargoNextest.nix (partitions > 1 gives a linkFarm of runs in crane;
      # the stand-in returns one derivation either way)
      cargoNextest = withSpec {
        name = "cargoNextest";
        required = [ "cargoArtifacts" ];
        own = [ "cargoExtraArgs" "cargoLlvmCovExtraArgs" "cargoNextestExtraArgs" "cargoNextestArchiveExtraArgs" "cargoNextestPartitionsExtraArgs" "partitions" "partitionType" "withLlvmCov" ];
        suffix = "-nextest";
        extraInputs = [ pkgs.cargo-nextest ];
        check = args:
          stringArg "cargoNextest" args "cargoNextestExtraArgs"
          && (builtins.isInt (args.partitions or 1) && (args.partitions or 1) >= 1 || throw "craneLib.cargoNextest: `partitions` must be an integer >= 1")
          && (elem (args.partitionType or "count") [ "count" "hash" ] || throw "craneLib.cargoNextest: `partitionType` must be \"count\" or \"hash\" (nextest --partition)");
      };

      # lib/cargoTest.nix
      cargoTest = withSpec {
        name = "cargoTest";
        required = [ "cargoArtifacts" ];
        own = [ "cargoExtraArgs" "cargoTestExtraArgs" ];
        suffix = "-test";
      };

      # lib/cargoDocTest.nix
      cargoDocTest = withSpec {
        name = "cargoDocTest";
        required = [ "cargoArtifacts" ];
        own = [ "cargoExtraArgs" "cargoTestExtraArgs" ];
        suffix = "-doctest";
      };

      # lib/cargoDoc.nix
      cargoDoc = withSpec {
        name = "cargoDoc";
        own = [ "cargoDocExtraArgs" "cargoExtraArgs" ];
        suffix = "-doc";
      };

      # lib/cargoAudit.nix
      cargoAudit = withSpec {
        name = "cargoAudit";
        required = [ "advisory-db" "src" ];
        own = [ "cargoAuditExtraArgs" ];
        suffix = "-audit";
        extraInputs = [ pkgs.cargo-audit ];
        check = args:
          inSource args.src "Cargo.lock"
          || throw "craneLib.cargoAudit: Cargo.lock is not part of `src`";
      };

      # lib/cargoDeny.nix
      cargoDeny = withSpec {
        name = "cargoDeny";
        own = [ "cargoDenyExtraArgs" "cargoDenyChecks" "cargoExtraArgs" ];
        suffix = "-deny";
      };

      # lib/mkCargoDerivation.nix
      mkCargoDerivation = withSpec {
        name = "mkCargoDerivation";
        required = [ "cargoArtifacts" "buildPhaseCargoCommand" ];
        suffix = "";
      };

      # lib/devShell.nix (devShellFn above)
      devShell = {
        standInSpec = { name = "devShell"; file = "devShell.nix"; required = [ ]; own = [ "checks" "inputsFrom" "packages" ]; common = [ ]; };
        __functor = _: devShellFn;
      };
      # lib/fileset/*.nix: real file sets (lib.fileset from nixpkgs lib).
      fileset =
        let
          byName = names: path: lib.fileset.fileFilter (file: elem file.name names) path;
          byExt = ext: path: lib.fileset.fileFilter (file: file.hasExt ext) path;
        in
        rec {
          cargoTomlAndLock = byName [ "Cargo.toml" "Cargo.lock" ];
          rust = byExt "rs";
          toml = byExt "toml";
          configToml = byName [ "config.toml" ];
          commonCargoSources = path: lib.fileset.unions [ (cargoTomlAndLock path) (rust path) (toml path) ];
        };
    };
in
# crane's default toolchain is nixpkgs' cargo/rustc/clippy/rustfmt.
makeLib { inherit (pkgs) cargo rustc clippy rustfmt; }
