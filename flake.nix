{
  description = "users-platform: two Rust services, minimal reproducible OCI images and Kubernetes manifests from one flake";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixpkgs-unstable";

    # Build library for Cargo projects; it has no inputs of its own.
    crane.url = "github:ipetkov/crane";

    # Rust toolchain with the musl target, for a static binary.
    rust-overlay = {
      url = "github:oxalica/rust-overlay";
      inputs.nixpkgs.follows = "nixpkgs";
    };

    # Kubernetes modules; k8s/default.nix imports it from its source tree.
    kubenix = {
      url = "github:hall/kubenix";
      inputs.nixpkgs.follows = "nixpkgs";
    };

    # RustSec advisories for the cargo-audit check, locked like any other input.
    advisory-db = {
      url = "github:rustsec/advisory-db";
      flake = false;
    };
  };

  outputs = { nixpkgs, crane, rust-overlay, kubenix, advisory-db, ... }:
    let
      inherit (nixpkgs) lib;

      systems = [ "x86_64-linux" "aarch64-linux" ];

      perSystem = lib.genAttrs systems (system:
        import ./nix {
          inherit system nixpkgs crane rust-overlay kubenix advisory-db;
        });

      collect = attr: lib.mapAttrs (_system: outputs: outputs.${attr}) perSystem;
    in
    {
      packages = collect "packages";
      checks = collect "checks";
      apps = collect "apps";
      devShells = collect "devShells";
      formatter = collect "formatter";

      # Plain data: `nix eval --json .#imageRefs` prints the image references
      # (name:content-hash tag) of this commit without building anything.
      legacyPackages = collect "legacyPackages";
    };
}
