# Everything the flake exposes for one system. flake.nix calls this once per system.
{ system, nixpkgs, crane, rust-overlay, kubenix, advisory-db }:
let
  pkgs = import nixpkgs {
    inherit system;
    overlays = [ rust-overlay.overlays.default ];
  };
  inherit (pkgs) lib;

  # x86_64-unknown-linux-musl or aarch64-unknown-linux-musl: the binary is linked
  # statically against musl, so the images need nothing but the binary itself.
  muslTarget = "${pkgs.stdenv.hostPlatform.parsed.cpu.name}-unknown-linux-musl";

  # The toolchain of rust-toolchain.toml (exact version, components, musl targets), so
  # the flake compiles, lints and tests with the compiler scripts/check uses.
  toolchainOf = p: p.rust-bin.fromRustupToolchainFile ../rust-toolchain.toml;
  craneLib = (crane.mkLib pkgs).overrideToolchain toolchainOf;

  # Same toolchain with rust-src and rust-analyzer, for the dev shell only.
  devToolchain = (toolchainOf pkgs).override {
    extensions = [ "clippy" "rustfmt" "rust-src" "rust-analyzer" ];
  };

  python = pkgs.python3.withPackages (ps: [ ps.pyyaml ]);

  # The Python tools of scripts/deps/requirements.txt, from nixpkgs: what the check stages
  # (nix flake check) and the dev shell (scripts/check, scripts/e2e by hand) run with.
  toolsPython = pkgs.python3.withPackages (ps: [
    ps.pyyaml
    ps.pytest
    ps.kubernetes-validate
    ps.schemathesis
  ]);

  # promtool lives in the `cli` output of nixpkgs' prometheus.
  promtool = pkgs.prometheus.cli or pkgs.prometheus;

  # The platforms the images are published for (OCI architecture names), all built
  # on this machine: for the other CPU Rust cross-compiles the static binary, linked
  # with nixpkgs' cross compiler driver, and nixpkgs cross-compiles Redis.
  platforms = {
    amd64 = { cpu = "x86_64"; crossPkgs = pkgs.pkgsCross.gnu64; };
    arm64 = { cpu = "aarch64"; crossPkgs = pkgs.pkgsCross.aarch64-multiplatform; };
  };
  hostCpu = pkgs.stdenv.hostPlatform.parsed.cpu.name;
  native = lib.findFirst (arch: platforms.${arch}.cpu == hostCpu)
    (throw "users-platform: no image platform for ${system}")
    (builtins.attrNames platforms);

  rustFor = arch: { cpu, crossPkgs }:
    let cc = crossPkgs.stdenv.cc;
    in import ./package.nix {
      inherit lib craneLib;
      target = "${cpu}-unknown-linux-musl";
      linker = if arch == native then null else "${cc}/bin/${cc.targetPrefix}cc";
    };
  rustByPlatform = lib.mapAttrs rustFor platforms;
  rust = rustByPlatform.${native};

  images = import ./images.nix {
    inherit lib native;
    inherit (pkgs) dockerTools linkFarm;
    platforms = lib.mapAttrs
      (arch: { crossPkgs, ... }: {
        inherit (rustByPlatform.${arch}) users-platform;
        redis = if arch == native then pkgs.redis else crossPkgs.redis;
      })
      platforms;
  };

  manifests = import ./manifests.nix {
    inherit lib pkgs python kubenix images;
  };

  apps = import ./apps.nix {
    inherit lib pkgs python nixpkgs kubenix images manifests;
  };

  checks = import ./checks.nix {
    inherit lib pkgs craneLib rust images manifests apps promtool;
    python = toolsPython;
    inputs = { inherit nixpkgs crane rust-overlay kubenix advisory-db; };
  };

  formatter = pkgs.writeShellApplication {
    name = "nix-fmt";
    runtimeInputs = [ pkgs.nixpkgs-fmt pkgs.git pkgs.findutils ];
    text = builtins.readFile ./fmt.sh;
  };
in
{
  packages = {
    inherit (rust) users-platform;
    default = rust.users-platform;
    users-platform-amd64 = rustByPlatform.amd64.users-platform;
    users-platform-arm64 = rustByPlatform.arm64.users-platform;
    api-gateway-image = images.api-gateway;
    user-service-image = images.user-service;
    redis-image = images.redis;
    images = images.all;
    manifests-dev = manifests.dev;
    manifests-prod = manifests.prod;
  };

  inherit checks formatter;

  apps = lib.mapAttrs
    (_name: drv: {
      type = "app";
      program = lib.getExe drv;
      meta.description = drv.meta.description;
    })
    apps;

  devShells.default = (craneLib.overrideToolchain devToolchain).devShell {
    packages = [
      pkgs.cargo-nextest
      pkgs.cargo-audit
      pkgs.redis
      pkgs.kind
      pkgs.kubectl
      pkgs.skopeo
      promtool
      pkgs.nixpkgs-fmt
      pkgs.deadnix
      pkgs.shellcheck
      pkgs.jq
      toolsPython
    ];
    # Plain `cargo build` stays a fast glibc debug build; with `--target <musl
    # triple>` the shell links statically, exactly like the Nix package.
    "CARGO_TARGET_${lib.toUpper (builtins.replaceStrings [ "-" ] [ "_" ] muslTarget)}_RUSTFLAGS" =
      "-C target-feature=+crt-static";
  };

  legacyPackages = {
    inherit muslTarget;
    inherit (manifests) imageRefs;
  };
}
