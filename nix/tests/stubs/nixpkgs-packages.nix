# The nixpkgs package attributes the flake may use, for the stand-in pkgs of
# stubs/pkgs.nix: any name not listed here is a missing attribute, as a name
# nixpkgs does not have would be. Each was checked to exist in nixpkgs: in a
# stored 2025/2026 copy of NixOS/nixpkgs (pkgs/by-name/<xx>/<name>/package.nix,
# pkgs/top-level/python-packages.nix), or, where marked, from knowledge of
# long-standing top-level attributes. nix/tests/nixpkgs-signatures.nix checks
# the list against a real nixpkgs when NIXPKGS_SRC is given.
#
# Add a name, with how you checked it, when the flake starts using a package.
# A spec may give: version, outputs, mainProgram, license, overrideSignature
# (an entry of stubs/nixpkgs-signatures.nix for a checking `override`).
{ lib }:
{
  packageNames = {
    # by-name, checked in the stored copy
    cargo-audit = { };
    cargo-nextest = { };
    deadnix = { };
    jq = { };
    kind = { };
    kubectl = { };
    kubeconform = { };
    nixpkgs-fmt = { };
    skopeo = { };
    cacert = { };
    actionlint = { };
    checkov = { };
    wrk = { };
    haproxy = { };
    manifest-tool = { };
    # pkgs/by-name/pr/prometheus/package.nix (stored copy e92b6585): outputs out, doc, cli
    prometheus = { outputs = [ "out" "doc" "cli" ]; mainProgram = "prometheus"; };
    # pkgs/by-name/re/redis/package.nix (stored copy 02d79c9c): the override
    # arguments and meta.license are what nix/images.nix reads.
    redis = {
      version = "8.0.3";
      mainProgram = "redis-cli";
      license = lib.licenses.agpl3Only;
      overrideSignature = "redisOverride";
    };
    # long-standing top-level attributes (knowledge)
    bash = { };
    nix = { };
    nginx = { };
    bashInteractive = { mainProgram = "bash"; };
    binutils-unwrapped = { };
    bintools = { };
    coreutils = { };
    curl = { outputs = [ "bin" "dev" "out" "man" "devdoc" ]; };
    diffutils = { };
    findutils = { };
    gawk = { };
    git = { };
    gnugrep = { mainProgram = "grep"; };
    gnused = { mainProgram = "sed"; };
    gnutar = { mainProgram = "tar"; };
    gzip = { };
    libiconv = { };
    libsecret = { };
    lndir = { };
    makeWrapper = { };
    autoPatchelfHook = { };
    openssl = { outputs = [ "bin" "out" "dev" "man" "doc" ]; };
    shellcheck = { };
    zlib = { };
    gccForLibs = { outputs = [ "out" "lib" ]; };
    cargo = { };
    rustc = { };
    clippy = { };
    rustfmt = { };
  };

  # Python packages used through python3.withPackages / python3Packages:
  # pkgs/development/python-modules/<name> (schemathesis checked in a stored copy;
  # pyyaml, pytest, jsonschema, requests: knowledge), kubernetes-validate from
  # pkgs/top-level/python-packages.nix (`callPackage ../by-name/ku/kubernetes-validate/unwrapped.nix`,
  # stored copy).
  pythonPackageNames = [ "pyyaml" "pytest" "jsonschema" "requests" "schemathesis" "kubernetes-validate" ];
}
