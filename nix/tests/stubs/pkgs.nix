# Stand-in for nixpkgs' `pkgs` (what `import nixpkgs { system; overlays; }`
# returns), for evaluating the flake offline with Nix 2.8 (nix/tests/eval-flake.nix).
#
# Why: the flake only needs nixpkgs for builders and packages; what matters at
# evaluation time is that every function gets arguments the real one takes and
# every package attribute exists. So:
#   - `pkgs` is a real fixpoint with the given overlays applied in order, so the
#     real rust-overlay overlay runs on it (its `rust-bin.fromRustupToolchainFile`
#     resolves rust-toolchain.toml against the overlay's release manifests; an
#     unknown channel, component or target fails).
#   - `pkgs.lib` is the real nixpkgs lib (nix/tests/stubs/lib.nix).
#   - each builder below takes exactly the arguments of the real function (the
#     lists, and the nixpkgs file and copy each was read from, are in
#     stubs/nixpkgs-signatures.nix) and returns a fake derivation whose
#     outPath/drvPath force all its arguments (stubs/derivation.nix).
#   - package attributes come from the explicit list in stubs/nixpkgs-packages.nix;
#     any other name is a missing attribute, as in nixpkgs.
#   - pkgsCross.<example> is the same stand-in for a cross instance.
# With NIXPKGS_SRC (a real nixpkgs tree), nix/tests/nixpkgs-signatures.nix
# compares both lists with the real pkgs.
{ lib, system, overlays, crossSystem ? null }:
let
  inherit (builtins) elem isAttrs isFunction isList isString;

  # Fake store paths differ between a native and a cross instance.
  stubs = import ./derivation.nix { inherit lib; system = if isCross then "${system}>${platform.config}" else system; };
  inherit (stubs) checkArgs checkDrvAttrs mkDrv isDerivation mkDerivationAttrs;

  # The argument lists, with their sources: stubs/nixpkgs-signatures.nix.
  signatures = import ./nixpkgs-signatures.nix;

  # checkSig "writeShellApplication" args: the arguments of that function;
  # functions with `...` also take mkDerivation attributes and env vars.
  checkSig = name: args:
    let sig = signatures.${name};
    in
    checkArgs
      {
        fn = "pkgs.${lib.concatStringsSep "." sig.attrPath}";
        inherit (sig) source required;
        optional = sig.optional ++ (sig.extra or [ ]) ++ lib.optionals (sig.rest or false) mkDerivationAttrs;
        envVars = sig.rest or false;
      }
      args;

  # Native, or cross-compiling from `system` to `crossSystem` (pkgsCross.<name>
  # is this file again with crossSystem = lib.systems.examples.<name>, as in
  # nixpkgs' pkgs/top-level/stage.nix). A crossSystem equal to the build
  # platform is a native instance, as in nixpkgs.
  buildPlatform = lib.systems.elaborate system;
  platform = if crossSystem == null then buildPlatform else lib.systems.elaborate crossSystem;
  isCross = platform.config != buildPlatform.config;

  # The package attributes that exist, with what the stand-ins need to know
  # about them: stubs/nixpkgs-packages.nix.
  inherit (import ./nixpkgs-packages.nix { inherit lib; }) packageNames pythonPackageNames;

  # --- derivations ------------------------------------------------------------

  # stdenv.mkDerivation: attrs or `finalAttrs: attrs`; name or pname + version.
  mkDerivationWith = fn: argsOrFun:
    let
      attrs0 = if isFunction argsOrFun then lib.fix (finalAttrs: argsOrFun finalAttrs) else argsOrFun;
      attrs = checkDrvAttrs fn (checkArgs { inherit fn; source = "pkgs/stdenv/generic/make-derivation.nix"; optional = mkDerivationAttrs; envVars = true; } attrs0);
      name = attrs.name or (
        if attrs ? pname && attrs ? version then "${attrs.pname}-${attrs.version}"
        else throw "${fn}: needs `name`, or `pname` and `version`"
      );
      self = mkDrv {
        inherit fn name;
        args = removeAttrs attrs [ "meta" "passthru" ];
        meta = attrs.meta or { };
        passthru = (attrs.passthru or { }) // {
          # lib.toExtension: attrs, `prev: attrs` or `final: prev: attrs`
          overrideAttrs = f: mkDerivationWith "${fn}.overrideAttrs" (attrs0 // lib.toExtension f attrs0 attrs0);
        };
        outputs = attrs.outputs or [ "out" ];
        version = attrs.version or null;
        pname = attrs.pname or null;
      };
    in
    self;

  # A package of `packageNames`: a fake derivation with nixpkgs' usual attributes
  # and, for packages with known call arguments, a checking `override`.
  package = name: spec:
    let
      base = {
        pname = name;
        version = spec.version or "0-stand-in";
        outputs = spec.outputs or [ "out" ];
        meta = {
          description = "stand-in for pkgs.${name}";
          mainProgram = spec.mainProgram or name;
        } // lib.optionalAttrs (spec ? license) { inherit (spec) license; };
      };
      drv = mkDerivationWith "pkgs.${name}" base;
      sig = signatures.${spec.overrideSignature};
      callArgs = lib.genAttrs sig.optional (arg: elem arg sig.withDefault);
      # lib.makeOverridable: `override` takes attrs or `prev: attrs`, and
      # lib.functionArgs sees the package function's arguments.
      override = lib.setFunctionArgs
        (newArgs:
          let
            given = if isFunction newArgs then newArgs { } else newArgs;
            checked = checkSig spec.overrideSignature given;
          in
          builtins.seq (stubs.forceDeep checked) drv)
        callArgs;
    in
    drv // lib.optionalAttrs (spec ? overrideSignature) { inherit override; };

  # --- builders -------------------------------------------------------------

  builders = final: rec {
    # pkgs/build-support/trivial-builders/default.nix (stored copy 00ee9b64):
    # runCommandWith { stdenv ? , runLocal ? false, derivationArgs ? { }, name }: buildCommand
    runCommandWith = args: buildCommand:
      let
        fn = "pkgs.runCommandWith";
        checked = checkSig "runCommandWith" args;
        env = checked.derivationArgs or { };
      in
      if !(isAttrs env) then throw "${fn}: derivationArgs must be an attribute set"
      else if !(isString buildCommand) then throw "${fn} ${checked.name}: the build command must be a string"
      else
        mkDrv {
          fn = "${fn} ${checked.name}";
          inherit (checked) name;
          args = checkDrvAttrs "${fn} ${checked.name}" (removeAttrs env [ "meta" "passthru" ] // { inherit buildCommand; });
          meta = env.meta or { };
          passthru = env.passthru or { };
        };

    # runCommand = name: env: runCommandWith { stdenv = stdenvNoCC; runLocal = false; inherit name; derivationArgs = env; };
    # `env` is free-form (it becomes environment variables): its names are not
    # checked, its values must be valid derivation attributes.
    runCommand = name: env: runCommandWith { inherit name; derivationArgs = env; };
    runCommandLocal = name: env: runCommandWith { inherit name; runLocal = true; derivationArgs = env; };
    runCommandCC = runCommand;
    runCommandNoCC = runCommand;

    # writeTextFile { name, text, executable ? false, destination ? "", checkPhase ? "",
    #   meta ? { }, passthru ? { }, allowSubstitutes ? false, preferLocalBuild ? true, derivationArgs ? { } }
    writeTextFile = args:
      let
        fn = "pkgs.writeTextFile";
        checked = checkSig "writeTextFile" args;
        destination = checked.destination or "";
        matches = builtins.match "/bin/([^/]+)" destination;
      in
      assert lib.assertMsg (isString checked.text) "${fn} ${checked.name}: text must be a string";
      assert lib.assertMsg (destination != "" -> (lib.hasPrefix "/" destination && destination != "/")) "${fn} ${checked.name}: destination must be an absolute path";
      runCommand checked.name
        ({
          inherit (checked) text;
          executable = checked.executable or false;
          checkPhase = checked.checkPhase or "";
          passAsFile = [ "text" ];
          meta = lib.optionalAttrs ((checked.executable or false) && matches != null) { mainProgram = lib.head matches; }
            // (checked.meta or { }) // (checked.derivationArgs.meta or { });
          passthru = (checked.passthru or { }) // (checked.derivationArgs.passthru or { });
        } // removeAttrs (checked.derivationArgs or { }) [ "passAsFile" "meta" "passthru" ])
        "target=$out${lib.escapeShellArg destination}";

    # writeText = name: text: (text must be a string; nixpkgs only warns for
    # other convertible values, the stand-in fails)
    writeText = name: text:
      if isString text then writeTextFile { inherit name text; }
      else throw "pkgs.writeText ${toString name}: the second argument must be a string, got a ${builtins.typeOf text}";
    writeTextDir = path: text: writeTextFile { inherit text; name = baseNameOf path; destination = "/${path}"; };
    writeScript = name: text: writeTextFile { inherit name text; executable = true; };
    writeScriptBin = name: text: writeTextFile { inherit name text; executable = true; destination = "/bin/${name}"; };
    writeShellScript = name: text: writeTextFile { inherit name; executable = true; text = "#!${final.runtimeShell}\n${text}"; };
    writeShellScriptBin = name: text: writeTextFile { inherit name; executable = true; destination = "/bin/${name}"; text = "#!${final.runtimeShell}\n${text}"; meta.mainProgram = name; };

    # writeShellApplication { name, text, runtimeInputs ? [ ], runtimeEnv ? null, meta ? { },
    #   passthru ? { }, checkPhase ? null, excludeShellChecks ? [ ], extraShellCheckFlags ? [ ],
    #   bashOptions ? [ "errexit" "nounset" "pipefail" ], derivationArgs ? { }, inheritPath ? true }
    # The script text is assembled like nixpkgs does (lib.toShellVar for
    # runtimeEnv, lib.makeBinPath for runtimeInputs), so bad values fail here too.
    writeShellApplication = args:
      let
        fn = "pkgs.writeShellApplication";
        checked = checkSig "writeShellApplication" args;
        runtimeInputs = checked.runtimeInputs or [ ];
        runtimeEnv = checked.runtimeEnv or null;
      in
      assert lib.assertMsg (isList runtimeInputs) "${fn} ${checked.name}: runtimeInputs must be a list";
      assert lib.assertMsg (runtimeEnv == null || isAttrs runtimeEnv) "${fn} ${checked.name}: runtimeEnv must be an attribute set";
      writeTextFile {
        inherit (checked) name;
        meta = checked.meta or { };
        derivationArgs = checked.derivationArgs or { };
        passthru = checked.passthru or { };
        executable = true;
        destination = "/bin/${checked.name}";
        text = ''
          #!${final.runtimeShell}
          ${lib.concatMapStringsSep "\n" (option: "set -o ${option}") (checked.bashOptions or [ "errexit" "nounset" "pipefail" ])}
        ''
        + lib.optionalString (runtimeEnv != null)
          (lib.concatStrings (lib.mapAttrsToList (name: value: "${lib.toShellVar name value}\nexport ${name}\n") runtimeEnv))
        + lib.optionalString (runtimeInputs != [ ])
          "export PATH=\"${lib.makeBinPath runtimeInputs}${lib.optionalString (checked.inheritPath or true) ":$PATH"}\"\n"
        + checked.text;
        checkPhase =
          let c = checked.checkPhase or null;
          in if c == null then "${final.stdenv.shellDryRun} \"$target\"" else c;
      };

    # symlinkJoin args_@{ name ? "${pname}-${version}", paths, stripPrefix ? "", preferLocalBuild ? true,
    #   allowSubstitutes ? false, postBuild ? "", failOnMissing ? stripPrefix == "", ... }
    # (the rest goes to runCommand, i.e. mkDerivation)
    symlinkJoin = args:
      let
        fn = "pkgs.symlinkJoin";
        own = signatures.symlinkJoin.required ++ signatures.symlinkJoin.optional;
        checked = checkSig "symlinkJoin" args;
        name = checked.name or (
          if checked ? pname && checked ? version then "${checked.pname}-${checked.version}"
          else throw "${fn}: symlinkJoin requires either a `name` OR `pname` and `version`"
        );
        mapPaths = map (path: if path == null then null else if isList path then mapPaths path else "${path}${checked.stripPrefix or ""}");
      in
      runCommand name
        (removeAttrs checked own // {
          paths = mapPaths checked.paths;
          passAsFile = [ "paths" ];
        })
        (checked.postBuild or "");

    # linkFarm = name: entries: (a list of { name; path; } or an attribute set name -> path)
    linkFarm = name: entries:
      let
        entries' =
          if isAttrs entries then entries
          else if isList entries then
            lib.foldl
              (acc: entry: acc // {
                ${(checkArgs { fn = "pkgs.linkFarm ${name}"; source = "pkgs/build-support/trivial-builders/default.nix"; required = [ "name" "path" ]; } entry).name} = entry.path;
              })
              { }
              entries
          else throw "linkFarm entries must be either attrs or a list!";
      in
      runCommand name { passthru.entries = entries'; }
        (lib.concatStrings (lib.mapAttrsToList (entry: path: "ln -s -- ${lib.escapeShellArg "${path}"} ${lib.escapeShellArg entry}\n") entries'));
    linkFarmFromDrvs = name: drvs: linkFarm name (map (drv: { inherit (drv) name; path = drv; }) drvs);

    # pkgs/build-support/closure-info.nix (stored copy 06d7e54d): { rootPaths }
    closureInfo = args:
      let checked = checkSig "closureInfo" args;
      in runCommand "closure-info" { exportReferencesGraph = map (path: [ "closure-${baseNameOf path}" path ]) checked.rootPaths; } "";

    # pkgs/build-support/mkshell/default.nix (stored copy 07c91341)
    mkShell = args:
      let
        fn = "pkgs.mkShell";
        checked = checkSig "mkShell" args;
        inputsFrom = checked.inputsFrom or [ ];
        mergeInputs = attr: (checked.${attr} or [ ]) ++ lib.subtractLists inputsFrom (lib.flatten (lib.catAttrs attr (map (drv: drv.drvAttrs or { }) inputsFrom)));
      in
      mkDerivationWith fn (removeAttrs checked [ "packages" "inputsFrom" ] // {
        name = checked.name or "nix-shell";
        buildInputs = mergeInputs "buildInputs";
        nativeBuildInputs = (checked.packages or [ ]) ++ mergeInputs "nativeBuildInputs";
        propagatedBuildInputs = mergeInputs "propagatedBuildInputs";
        propagatedNativeBuildInputs = mergeInputs "propagatedNativeBuildInputs";
        phases = [ "buildPhase" ];
      });

    # pkgs/build-support/fetchurl/default.nix (knowledge): the arguments rust-overlay
    # and the flake may pass. A hash is required (nixpkgs throws without one).
    fetchurl = args:
      let
        fn = "pkgs.fetchurl";
        checked = checkSig "fetchurl" args;
        url = checked.url or (lib.head (checked.urls or (throw "${fn}: needs `url` or `urls`")));
      in
      assert lib.assertMsg (checked ? hash || checked ? sha256 || checked ? sha512 || checked ? sha1 || checked ? outputHash) "${fn} ${url}: no hash given";
      mkDrv {
        inherit fn;
        name = checked.name or (baseNameOf url);
        args = removeAttrs checked [ "meta" "passthru" ];
      };

    # pkgs/build-support/docker/default.nix (stored copy 34b7a306 for the older
    # argument set; the 2025+ set with architecture, mtime, uid/gid/uname/gname,
    # includeNixDB, meta, layeringPipeline, debug from knowledge, cross-checked
    # with a published summary of the signature).
    dockerTools =
      let
        # Keys of the image `config` object: OCI image-spec config.md ("config"
        # field) plus Docker's Healthcheck/OnBuild/Shell/StopTimeout/ArgsEscaped.
        # nixpkgs copies `config` into the image JSON unchecked; a misspelt key
        # would be silently ignored by the runtime, so the stand-in rejects it.
        configKeys = [ "User" "ExposedPorts" "Env" "Entrypoint" "Cmd" "Volumes" "WorkingDir" "Labels" "StopSignal" "ArgsEscaped" "Memory" "MemorySwap" "CpuShares" "Healthcheck" "OnBuild" "Shell" "StopTimeout" ];
        image = kind: args:
          let
            fn = "pkgs.dockerTools.${kind}";
            # buildLayeredImage takes the same arguments (it streams into a file).
            checked = checkSig "streamLayeredImage" args;
            config = checkArgs { fn = "${fn} ${checked.name}: config"; source = "the OCI image config"; optional = configKeys; } (checked.config or { });
            baseName = baseNameOf checked.name;
            conf = writeText "${baseName}-conf.json" (builtins.toJSON {
              inherit config;
              contents = map toString (lib.toList (checked.contents or [ ]));
              fakeRootCommands = checked.fakeRootCommands or "";
              extraCommands = checked.extraCommands or "";
            });
            tag = checked.tag or null;
            imageTag = if tag != null then tag else lib.head (lib.strings.splitString "-" (baseNameOf (builtins.unsafeDiscardStringContext conf.outPath)));
          in
          assert lib.assertMsg ((checked.maxLayers or 100) > 1) "${fn}: maxLayers must be greater than 1";
          mkDrv {
            inherit fn;
            name = "${if kind == "streamLayeredImage" then "stream-" else ""}${baseName}${lib.optionalString (kind != "streamLayeredImage") ".tar.gz"}";
            args = removeAttrs checked [ "passthru" "meta" ] // { inherit conf; };
            meta = checked.meta or { };
            passthru = (checked.passthru or { }) // {
              imageName = lib.toLower checked.name;
              inherit imageTag conf;
              isExe = kind == "streamLayeredImage";
            };
          };
      in
      {
        streamLayeredImage = image "streamLayeredImage";
        buildLayeredImage = image "buildLayeredImage";
      };

    # python3.withPackages (pkgs/development/interpreters/python/with-packages.nix, knowledge):
    # f: a function from the package set to a list of packages.
    python3 =
      let
        python = package "python3" { version = "3.13.0"; mainProgram = "python3"; };
        # passthru of nixpkgs' python interpreters and their environments
        # (pkgs/development/interpreters/python/passthrufun.nix, wrapper.nix; knowledge)
        pythonAttrs = {
          pkgs = final.python3Packages;
          pythonVersion = "3.13";
          executable = "python3.13";
          interpreter = "${python}/bin/python3.13";
          sitePackages = "lib/python3.13/site-packages";
        };
      in
      python // pythonAttrs // {
        withPackages = f:
          let
            selected = if isFunction f then f final.python3Packages else throw "python3.withPackages: expected a function `ps: [ ... ]`";
          in
          if !(isList selected) then throw "python3.withPackages: the function must return a list"
          else if !(builtins.all isDerivation selected) then throw "python3.withPackages: every element must be a package"
          else
            mkDrv
              {
                fn = "python3.withPackages";
                name = "python3-3.13.0-env";
                args = { paths = selected; };
                meta.mainProgram = "python3";
              } // pythonAttrs;
      };
    python3Packages = lib.genAttrs pythonPackageNames (name: package "python3.13-${name}" { }) // { python = final.python3; };
  };

  base = final:
    let
      stdenvFor = fn: extra: mkDrv { inherit fn; name = "stdenv-linux"; args = { }; } // {
        mkDerivation = mkDerivationWith "${fn}.mkDerivation";
        hostPlatform = platform;
        inherit buildPlatform;
        targetPlatform = platform;
        inherit system;
        inherit (platform) isLinux isDarwin;
        shellDryRun = "${final.bash}/bin/bash --noexec";
        shell = "${final.bash}/bin/bash";
      } // extra;
    in
    lib.mapAttrs package packageNames
    // builders final
    // {
      lib = lib;
      inherit system;
      hostPlatform = platform;
      inherit buildPlatform;
      targetPlatform = platform;
      # nixpkgs' own tree: rust-overlay only interpolates paths below it into
      # build scripts, so a store-path-like string is enough.
      path = "${builtins.storeDir}/${stubs.fakeHash "nixpkgs"}-source";
      runtimeShell = "${final.bash}/bin/bash";
      callPackage = lib.callPackageWith final;
      newScope = extra: lib.callPackageWith (final // extra);
      stdenv = stdenvFor "stdenv" {
        # The C compiler driver: for a cross instance, prefixed with the target
        # triple (pkgs/build-support/cc-wrapper, knowledge).
        cc = package (lib.optionalString isCross "${platform.config}-" + "gcc-wrapper") { } // {
          targetPrefix = lib.optionalString isCross "${platform.config}-";
          bintools = package "binutils-wrapper" { } // {
            expandResponseParams = package "expand-response-params" { };
            shell = final.runtimeShell;
            suffixSalt = lib.replaceStrings [ "-" "." ] [ "_" "_" ] platform.config;
            wrapperName = "BINTOOLS_WRAPPER";
            coreutils_bin = "${final.coreutils}";
          };
        };
      };
      stdenvNoCC = stdenvFor "stdenvNoCC" { cc = null; };
      # pkgsCross.<name>: nixpkgs for lib.systems.examples.<name>, with the same
      # overlays; a name that is not an example is a missing attribute.
      pkgsCross = lib.mapAttrs
        (_: example: import ./pkgs.nix { inherit lib system overlays; crossSystem = example; })
        lib.systems.examples;
      # Splices are not modelled: every one of them is this pkgs itself.
      buildPackages = final;
      pkgsBuildBuild = final;
      pkgsBuildHost = final;
      pkgsBuildTarget = final;
      pkgsHostHost = final;
      pkgsHostTarget = final;
      pkgsTargetTarget = final;
    };
in
lib.fix (lib.foldl' (acc: overlay: lib.extends overlay acc) base overlays)
