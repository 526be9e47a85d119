# `nix flake check`: the Rust checks (sharing one dependency build), the images,
# repository hygiene (Nix formatting and dead code, shellcheck), the manifest
# drift check and the Prometheus rule tests. Checks for parts of the tree that do
# not exist yet are left out rather than failing.
{ lib, pkgs, craneLib, rust, images, manifests, apps, promtool, python, advisory-db }:
let
  inherit (rust) src commonArgs cargoArtifacts users-platform;
  root = ../.;
  have = builtins.pathExists;

  # Runs `script` in a copy of the given part of the repository.
  checkTree = name: fileset: nativeBuildInputs: script:
    pkgs.runCommand name
      {
        inherit nativeBuildInputs;
        tree = lib.fileset.toSource { inherit root fileset; };
      } ''
      cp -r "$tree" tree
      chmod -R u+w tree
      cd tree
      ${script}
      touch "$out"
    '';

  rustChecks = {
    # The package itself (release build of the static binary).
    inherit users-platform;

    users-platform-clippy = craneLib.cargoClippy (commonArgs // {
      inherit cargoArtifacts;
      cargoClippyExtraArgs = "--all-targets -- --deny warnings";
    });

    users-platform-fmt = craneLib.cargoFmt { inherit src; };

    # The whole test suite, nothing skipped. The integration tests start their
    # own redis-server processes on free loopback ports (the build sandbox has a
    # loopback interface) and run the built binary through CARGO_BIN_EXE_*.
    users-platform-nextest = craneLib.cargoNextest (commonArgs // {
      inherit cargoArtifacts;
      partitions = 1;
      partitionType = "count";
      nativeCheckInputs = [ pkgs.redis ];
      cargoNextestExtraArgs = "--no-tests=fail";
    });

    # Known vulnerabilities in Cargo.lock, against the locked advisory-db input.
    users-platform-audit = craneLib.cargoAudit {
      inherit src advisory-db;
      inherit (commonArgs) pname version;
    };
  };

  # The image builds, plus proof that the service images hold nothing but the
  # binary: its runtime closure is itself, and it has no ELF interpreter.
  imageChecks = {
    images = images.all;

    static-binary = pkgs.runCommand "users-platform-static-binary"
      {
        nativeBuildInputs = [ pkgs.binutils-unwrapped ];
        closure = pkgs.closureInfo { rootPaths = [ users-platform ]; };
      } ''
      bin=${lib.getExe users-platform}
      if [ "$(wc -l < "$closure/store-paths")" -ne 1 ]; then
        echo "users-platform has runtime dependencies; the images would carry them:" >&2
        cat "$closure/store-paths" >&2
        exit 1
      fi
      if readelf -l "$bin" | grep -q 'program interpreter'; then
        echo "users-platform is dynamically linked" >&2
        exit 1
      fi
      "$bin" --help > /dev/null
      touch "$out"
    '';
  };

  hygieneChecks = {
    nix-fmt = checkTree "nix-fmt" (lib.fileset.fileFilter (file: file.hasExt "nix") root)
      [ pkgs.nixpkgs-fmt ]
      ''find . -name '*.nix' -print0 | xargs -0 nixpkgs-fmt --check'';

    deadnix = checkTree "deadnix" (lib.fileset.fileFilter (file: file.hasExt "nix") root)
      [ pkgs.deadnix ]
      ''deadnix --fail .'';

    shellcheck = checkTree "shellcheck"
      (lib.fileset.unions [
        (lib.fileset.maybeMissing ../scripts)
        (lib.fileset.fileFilter (file: file.hasExt "sh") ./.)
      ])
      [ pkgs.shellcheck ]
      ''
        scripts=()
        while IFS= read -r -d "" file; do
          if [[ $file == *.sh ]] || head -n1 "$file" | grep -Eq '^#!.*(/|[[:space:]])(ba)?sh([[:space:]]|$)'; then
            scripts+=("$file")
          fi
        done < <(find . -type f -print0 | sort -z)
        echo "shellcheck: ''${#scripts[@]} scripts"
        shellcheck --external-sources "''${scripts[@]}"
      '';

    # The apps' wrappers run shellcheck again at build time (writeShellApplication).
    inherit (apps) deploy-dev push-images render-manifests;
  };

  manifestChecks = lib.optionalAttrs (have ../k8s/default.nix) {
    manifest-drift = manifests.drift;
    manifests-dev = manifests.dev;
    manifests-prod = manifests.prod;
  };

  # Hook for the monitoring work: rule syntax and promtool unit tests, and the
  # rendered rules file kept in sync with its source, k8s/monitoring/rules.nix.
  monitoringChecks =
    lib.optionalAttrs (have ../monitoring/tests && have ../monitoring/rules.yml)
      {
        promtool-rules = checkTree "promtool-rules" (lib.fileset.maybeMissing ../monitoring) [ promtool ] ''
          promtool check rules monitoring/rules.yml
          promtool test rules monitoring/tests/*.yml
        '';
      }
    // lib.optionalAttrs
      (have ../monitoring/rules.yml && have ../monitoring/tools/to_rules_yaml.py && have ../k8s/monitoring/rules.nix)
      {
        rules-drift = pkgs.runCommand "rules-drift"
          {
            nativeBuildInputs = [ python ];
            json = pkgs.writeText "rules.json" (builtins.toJSON (import ../k8s/monitoring/rules.nix));
          } ''
          python3 ${../monitoring/tools}/to_rules_yaml.py < "$json" > fresh.yml
          # scripts/render-rules ends the file with exactly one newline.
          printf '%s\n' "$(cat fresh.yml)" > expected.yml
          if ! cmp -s expected.yml ${../monitoring/rules.yml}; then
            diff -u ${../monitoring/rules.yml} expected.yml >&2 || true
            echo "monitoring/rules.yml is out of date: run scripts/render-rules and commit it" >&2
            exit 1
          fi
          touch "$out"
        '';
      };
in
rustChecks // imageChecks // hygieneChecks // manifestChecks // monitoringChecks
