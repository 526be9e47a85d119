# Argument lists of the nixpkgs functions the stand-ins in stubs/pkgs.nix
# replace: stubs/pkgs.nix checks calls against them, and
# nix/tests/nixpkgs-signatures.nix compares them with a real nixpkgs when one is
# given (NIXPKGS_SRC).
#
#   attrPath  where the function is in pkgs
#   required  arguments without a default
#   optional  arguments with a default
#   rest      true when the real function has `...` (the rest goes to
#             mkDerivation; the stand-in then also accepts the stdenv attributes
#             in stubs/derivation.nix and ALL_CAPS environment variables)
#   source    the file, and which copy the list was read from: the locked rev
#             104240a772428cc2e20d8fd86c9ddbb886bbaff2 was not readable on the
#             machine this was written on, so the lists come from the stored
#             NixOS/nixpkgs copies named (commit) or from knowledge of nixpkgs.
{
  runCommandWith = {
    attrPath = [ "runCommandWith" ];
    required = [ "name" ];
    optional = [ "stdenv" "runLocal" "derivationArgs" ];
    source = "pkgs/build-support/trivial-builders/default.nix (stored copy 00ee9b64)";
  };
  writeTextFile = {
    attrPath = [ "writeTextFile" ];
    required = [ "name" "text" ];
    optional = [ "executable" "destination" "checkPhase" "meta" "passthru" "allowSubstitutes" "preferLocalBuild" "derivationArgs" ];
    source = "pkgs/build-support/trivial-builders/default.nix (stored copy 00ee9b64)";
  };
  writeShellApplication = {
    attrPath = [ "writeShellApplication" ];
    required = [ "name" "text" ];
    optional = [ "runtimeInputs" "runtimeEnv" "meta" "passthru" "checkPhase" "excludeShellChecks" "extraShellCheckFlags" "bashOptions" "derivationArgs" "inheritPath" ];
    source = "pkgs/build-support/trivial-builders/default.nix (stored copy 00ee9b64)";
  };
  symlinkJoin = {
    attrPath = [ "symlinkJoin" ];
    required = [ "paths" ];
    optional = [ "name" "stripPrefix" "preferLocalBuild" "allowSubstitutes" "postBuild" "failOnMissing" ];
    rest = true;
    source = "pkgs/build-support/trivial-builders/default.nix (stored copy 00ee9b64)";
  };
  closureInfo = {
    attrPath = [ "closureInfo" ];
    required = [ "rootPaths" ];
    optional = [ ];
    source = "pkgs/build-support/closure-info.nix (stored copy 06d7e54d)";
  };
  mkShell = {
    attrPath = [ "mkShell" ];
    required = [ ];
    optional = [ "name" "packages" "inputsFrom" "buildInputs" "nativeBuildInputs" "propagatedBuildInputs" "propagatedNativeBuildInputs" ];
    # shellHook is not a named argument but mkShell reads it from the rest.
    extra = [ "shellHook" ];
    rest = true;
    source = "pkgs/build-support/mkshell/default.nix (stored copy 07c91341)";
  };
  fetchurl = {
    attrPath = [ "fetchurl" ];
    required = [ ];
    optional = [ "url" "urls" "name" "pname" "version" "hash" "sha256" "sha1" "sha512" "md5" "outputHash" "outputHashAlgo" "recursiveHash" "downloadToTemp" "postFetch" "executable" "curlOpts" "curlOptsList" "netrcPhase" "netrcImpureEnvVars" "showURLs" "preferLocalBuild" "meta" "passthru" "nativeBuildInputs" "impureEnvVars" "mirrorsFile" "resolvedUrl" ];
    # Only rust-overlay calls it (url, sha256, name); the list is from
    # knowledge, so only "the stand-in accepts every real argument" is compared.
    # Recent fetchurl is built with lib.extendMkDerivation and passes the rest
    # to mkDerivation.
    loose = true;
    rest = true;
    source = "pkgs/build-support/fetchurl/default.nix (knowledge)";
  };
  streamLayeredImage = {
    attrPath = [ "dockerTools" "streamLayeredImage" ];
    required = [ "name" ];
    optional = [ "tag" "fromImage" "contents" "config" "architecture" "created" "mtime" "uid" "gid" "uname" "gname" "maxLayers" "extraCommands" "fakeRootCommands" "enableFakechroot" "includeStorePaths" "includeNixDB" "passthru" "meta" "layeringPipeline" "debug" ];
    source = "pkgs/build-support/docker/default.nix (stored copy 34b7a306 for the older arguments; architecture, mtime, uid/gid/uname/gname, includeNixDB, meta, layeringPipeline and debug from knowledge)";
  };
  # The package function's arguments, as lib.functionArgs pkgs.redis.override
  # sees them (all may be overridden; required/optional is not compared).
  redisOverride = {
    attrPath = [ "redis" "override" ];
    required = [ ];
    optional = [ "lib" "stdenv" "fetchFromGitHub" "fetchpatch2" "lua" "jemalloc" "pkg-config" "nixosTests" "tcl" "which" "ps" "getconf" "systemd" "openssl" "python3" "nix-update-script" "versionCheckHook" "withSystemd" "tlsSupport" "useSystemJemalloc" ];
    withDefault = [ "withSystemd" "tlsSupport" "useSystemJemalloc" ];
    override = true;
    source = "pkgs/by-name/re/redis/package.nix (stored copy 02d79c9c)";
  };
}
