# `nix flake check`. Two kinds of check, and nothing else:
#
#  - one check per scripts/check stage, named like the stage, that runs the very same script
#    (scripts/check-<stage>, scripts/bench --quick) in a copy of the repository, with the
#    tools from nixpkgs instead of scripts/install-deps. scripts/check-flake fails when a stage
#    has no check here or a check here is neither a stage nor a build-* check;
#  - build-* checks: what needs Nix builds and so cannot run outside Nix (the static binary,
#    the images, the apps' wrappers, the deployable manifests).
#
# No check is guarded by pathExists: a missing file fails evaluation or the check itself.
{ lib, pkgs, craneLib, rust, images, manifests, apps, promtool, python, inputs }:
let
  inherit (rust) commonArgs users-platform;
  bin = lib.getExe users-platform;

  # The flake's own source (git-tracked files only); every stage script runs in a copy of it.
  repository = ../.;

  # The source trees the stages evaluate Nix with: the locked inputs themselves.
  nixSources = {
    NIXPKGS_LIB_SRC = "${inputs.nixpkgs}";
    KUBENIX_SRC = "${inputs.kubenix}";
    RUST_OVERLAY_SRC = "${inputs.rust-overlay}";
    CRANE_SRC = "${inputs.crane}";
  };

  # Runs `command` (a stage script) in a writable copy of the repository.
  stage = name: tools: env: command:
    pkgs.runCommand "users-platform-check-${name}"
      ({
        nativeBuildInputs = tools;
      } // env) ''
      cp -r ${repository} tree
      chmod -R u+w tree
      cd tree
      # The sandbox has no /usr/bin/env: point the scripts' shebangs at the store.
      patchShebangs --build scripts nix k8s monitoring
      # Nix evaluation inside the build sandbox: state in the build directory, nothing fetched.
      export HOME=$TMPDIR NIX_STATE_DIR=$TMPDIR/nix-state NIX_CONF_DIR=$TMPDIR/nix-conf
      mkdir -p "$NIX_CONF_DIR"
      ${command}
      touch "$out"
    '';

  # Dependencies of the debug profile (what scripts/check-rust's cargo build, clippy and
  # nextest use), built once and shared by every run of the rust stage.
  devArtifacts = craneLib.buildDepsOnly (commonArgs // { CARGO_PROFILE = "dev"; });

  stageChecks = {
    rust = craneLib.mkCargoDerivation (commonArgs // {
      src = repository;
      cargoArtifacts = devArtifacts;
      pnameSuffix = "-check-rust";
      nativeBuildInputs = [ pkgs.redis pkgs.cargo-nextest pkgs.python3 ];
      buildPhaseCargoCommand = "patchShebangs --build scripts && scripts/check-rust";
      doInstallCargoArtifacts = false;
    });

    audit = stage "audit" [ pkgs.cargo-audit ] { ADVISORY_DB = "${inputs.advisory-db}"; }
      "scripts/check-audit";

    schemathesis = stage "schemathesis" [ python ] { USERS_PLATFORM_BIN = bin; }
      "scripts/check-schemathesis";

    shell = stage "shell" [ pkgs.shellcheck ] { } "scripts/check-shell";

    nix = stage "nix" [ pkgs.nix pkgs.deadnix pkgs.nixpkgs-fmt python ] { } "scripts/check-nix";

    flake = stage "flake" [ pkgs.nix pkgs.git python ] nixSources "scripts/check-flake";

    k8s = stage "k8s" [ pkgs.nix python pkgs.checkov ]
      { inherit (nixSources) KUBENIX_SRC NIXPKGS_LIB_SRC; }
      "scripts/check-k8s";

    monitoring = stage "monitoring" [ pkgs.nix python pkgs.prometheus promtool pkgs.redis ]
      { USERS_PLATFORM_BIN = bin; }
      "scripts/check-monitoring";

    broken = stage "broken" [ python pkgs.redis ] { USERS_PLATFORM_BIN = bin; } "scripts/check-broken";

    workflows = stage "workflows" [ pkgs.actionlint pkgs.shellcheck python ] { } "scripts/check-workflows";

    bench = stage "bench" [ python pkgs.redis pkgs.wrk pkgs.curl pkgs.nginx pkgs.haproxy ]
      { BENCH_BIN = bin; BENCH_BARE_BIN = lib.getExe rust.bare-proxy; }
      "scripts/bench --quick";
  };

  buildChecks = {
    # The package itself (release build of the static binary).
    build-users-platform = users-platform;

    build-images = images.all;

    # The service images hold nothing but the binary: its runtime closure is itself, and it
    # has no ELF interpreter.
    build-static-binary = pkgs.runCommand "users-platform-static-binary"
      {
        nativeBuildInputs = [ pkgs.binutils-unwrapped ];
        closure = pkgs.closureInfo { rootPaths = [ users-platform ]; };
      } ''
      if [ "$(wc -l < "$closure/store-paths")" -ne 1 ]; then
        echo "users-platform has runtime dependencies; the images would carry them:" >&2
        cat "$closure/store-paths" >&2
        exit 1
      fi
      if readelf -l ${bin} | grep -q 'program interpreter'; then
        echo "users-platform is dynamically linked" >&2
        exit 1
      fi
      ${bin} --help > /dev/null
      touch "$out"
    '';

    build-manifests-dev = manifests.dev;
    build-manifests-prod = manifests.prod;

    # The apps' wrappers run shellcheck again at build time (writeShellApplication).
    build-deploy-dev = apps.deploy-dev;
    build-push-images = apps.push-images;
    build-render-manifests = apps.render-manifests;
  };
in
stageChecks // buildChecks
