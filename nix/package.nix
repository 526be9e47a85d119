# The users-platform binary, built with crane as a static musl executable for
# `target` (x86_64- or aarch64-unknown-linux-musl). The target need not be this
# machine's: Rust cross-compiles, and a foreign target only needs `linker`, a C
# compiler driver for that CPU (Rust brings musl's libc and start files itself).
{ lib, craneLib, target, linker ? null }:
let
  root = ../.;

  # Everything cargo needs and nothing else, so editing docs, k8s or nix files does
  # not rebuild the crate: every *.rs and *.toml file plus Cargo.lock (crane's
  # common set), and src/ and tests/ in full for include_str! data and fixtures.
  src = lib.fileset.toSource {
    inherit root;
    fileset = lib.fileset.unions [
      (craneLib.fileset.commonCargoSources root)
      ../src
      ../tests
    ];
  };

  crate = craneLib.crateNameFromCargoToml { cargoToml = ../Cargo.toml; };

  # Shared by every derivation below, so they all reuse one dependency build.
  commonArgs = {
    inherit src;
    inherit (crate) pname version;
    strictDeps = true;

    # crane's cross-musl recipe: build for the musl target and link the C
    # runtime statically. Host artifacts (build scripts, proc
    # macros) are unaffected because the target is explicit.
    CARGO_BUILD_TARGET = target;
    CARGO_BUILD_RUSTFLAGS = "-C target-feature=+crt-static";
  } // lib.optionalAttrs (linker != null) {
    "CARGO_TARGET_${lib.toUpper (builtins.replaceStrings [ "-" ] [ "_" ] target)}_LINKER" = linker;
  };

  # Dependencies only, built once in release mode and shared by the package,
  # clippy and nextest.
  cargoArtifacts = craneLib.buildDepsOnly commonArgs;

  users-platform = craneLib.buildPackage (commonArgs // {
    inherit cargoArtifacts;
    # The test suite runs once, in checks.nextest (it needs redis-server).
    doCheck = false;
    meta = {
      description = "User-management API: api-gateway and user-service in one static binary";
      homepage = "https://github.com/users-platform/users-platform";
      license = lib.licenses.mit;
      mainProgram = "users-platform";
      platforms = lib.platforms.linux;
    };
  });

  # The bench's yardstick, examples/bare_proxy.rs (a bare hyper proxy), built like the package
  # so `scripts/bench` in the bench check compares all four fronts there too.
  bare-proxy = craneLib.buildPackage (commonArgs // {
    inherit cargoArtifacts;
    pname = "${crate.pname}-bare-proxy";
    cargoExtraArgs = "--locked --example bare_proxy";
    doCheck = false;
    meta = {
      description = "A bare hyper reverse proxy: the floor the bench compares the api-gateway with";
      mainProgram = "bare_proxy";
      platforms = lib.platforms.linux;
    };
  });
in
{
  inherit src commonArgs cargoArtifacts users-platform bare-proxy;
}
