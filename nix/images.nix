# The three OCI images for every platform, as dockerTools streams:
# `./result | docker load`, or `./result > image.tar`. No base image, no shell, no
# package manager: each image holds one program's closure. The tag is left to
# dockerTools (null), so it is the hash of the image's configuration derivation:
# the same inputs always give the same tag and the same bytes. `created` keeps its
# default (the epoch), so no date or commit hash ends up inside an image.
#
# `platforms.<arch>` (amd64, arm64: OCI architecture names) holds that platform's
# users-platform binary and redis package, all built on this machine; `native` is
# this machine's arch. A published image is an OCI index of one image per platform
# (nix/push-images.sh); its tag is derived from its members' tags (indexTags).
{ lib, dockerTools, linkFarm, platforms, native }:
let
  source = "https://github.com/users-platform/users-platform";
  uid = "10001";

  # Image names carry the project's registry path, so the image that deploy-dev
  # loads into kind, the one push-images publishes and the references in the
  # rendered manifests are all "ghcr.io/users-platform/<name>:<tag>".
  repository = "ghcr.io/users-platform";

  labels = { title, version, licenses, description }: {
    "org.opencontainers.image.source" = source;
    "org.opencontainers.image.url" = source;
    "org.opencontainers.image.title" = title;
    "org.opencontainers.image.description" = description;
    "org.opencontainers.image.version" = version;
    "org.opencontainers.image.licenses" = licenses;
  };

  # One image per deployment target of the binary. The static musl binary has an
  # empty runtime closure, so the image is that one store path plus the
  # /bin/users-platform symlink.
  serviceImage = { architecture, users-platform, name, port, description }:
    dockerTools.streamLayeredImage {
      name = "${repository}/${name}";
      inherit architecture;
      contents = [ users-platform ];
      config = {
        Entrypoint = [ "/bin/users-platform" ];
        Cmd = [ name ];
        User = "${uid}:${uid}";
        ExposedPorts."${toString port}/tcp" = { };
        Labels = labels {
          inherit description;
          title = name;
          inherit (users-platform) version;
          licenses = "MIT";
        };
      };
    };

  # nixpkgs' redis without systemd support (nothing to notify inside a
  # container) and without TLS (in-cluster traffic, password-protected and
  # fenced by NetworkPolicies), which also keeps OpenSSL out of the image.
  # The upstream test suite is skipped: it takes longer than everything else in
  # this flake together, and the same sources are tested by nixpkgs' own builds.
  redisServerOf = redis:
    let overridable = lib.functionArgs redis.override;
    in
    assert lib.assertMsg (overridable ? withSystemd)
      "nixpkgs' redis no longer takes `withSystemd`; update nix/images.nix";
    (redis.override ({ withSystemd = false; }
      // lib.optionalAttrs (overridable ? tlsSupport) { tlsSupport = false; })).overrideAttrs (_: {
      doCheck = false;
    });

  redisImage = architecture: redis:
    let
      redisServer = redisServerOf redis;
      licenses = lib.concatMapStringsSep " OR "
        (license: license.spdxId or "LicenseRef-${license.shortName or "unknown"}")
        (lib.toList redisServer.meta.license);
    in
    dockerTools.streamLayeredImage {
      name = "${repository}/redis";
      inherit architecture;
      contents = [ redisServer ];
      # /data is the only writable path the server needs (RDB/AOF files). It is
      # owned by the runtime uid so the image also works without a volume; in
      # Kubernetes a PVC or emptyDir is mounted there (fsGroup 10001).
      fakeRootCommands = ''
        mkdir -p data
        chown ${uid}:${uid} data
        chmod 0750 data
      '';
      config = {
        # Configuration comes from arguments: Kubernetes replaces Cmd with its own
        # `args` (e.g. adding --requirepass). Protected mode stays on, so the
        # defaults below only accept local connections until a password is set.
        Entrypoint = [ "/bin/redis-server" ];
        Cmd = [ "--dir" "/data" "--appendonly" "yes" "--port" "6379" ];
        User = "${uid}:${uid}";
        WorkingDir = "/data";
        Volumes."/data" = { };
        ExposedPorts."6379/tcp" = { };
        Labels = labels {
          title = "redis";
          inherit licenses;
          inherit (redisServer) version;
          description = "Redis server for users-platform (nixpkgs redis, no systemd, no TLS)";
        };
      };
    };

  imagesFor = architecture: { users-platform, redis }: {
    api-gateway = serviceImage {
      inherit architecture users-platform;
      name = "api-gateway";
      port = 3000;
      description = "users-platform api-gateway: public HTTP API in front of the user-service";
    };
    user-service = serviceImage {
      inherit architecture users-platform;
      name = "user-service";
      port = 3001;
      description = "users-platform user-service: user storage API backed by Redis";
    };
    redis = redisImage architecture redis;
  };

  byPlatform = lib.mapAttrs imagesFor platforms;
  names = [ "api-gateway" "user-service" "redis" ];
  archs = builtins.attrNames platforms;

  # The tag of a published (multi-platform) image: the first 32 hex digits of the
  # SHA-256 of its members' lines "<arch>=<member tag>\n", archs sorted. Member
  # tags are content hashes, so the index tag is one too: the same members always
  # give the same tag, and any change to any platform's image gives a new one.
  indexTag = name: builtins.substring 0 32 (builtins.hashString "sha256"
    (lib.concatMapStrings
      (arch: "${arch}=${builtins.unsafeDiscardStringContext byPlatform.${arch}.${name}.imageTag}\n")
      archs));
in
{
  inherit repository byPlatform native;
  # This machine's images (deploy-dev loads them into kind).
  inherit (byPlatform.${native}) api-gateway user-service redis;
  indexTags = lib.genAttrs names indexTag;

  # `nix build .#images`: every image stream, `<name>` for this machine's platform
  # and `<name>-<arch>` for each platform.
  all = linkFarm "users-platform-images" (
    map (name: { inherit name; path = byPlatform.${native}.${name}; }) names
    ++ lib.concatMap
      (arch: map (name: { name = "${name}-${arch}"; path = byPlatform.${arch}.${name}; }) names)
      archs
  );
}
