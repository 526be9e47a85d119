# The three OCI images, as dockerTools streams: `./result | docker load`, or
# `./result > image.tar`. No base image, no shell, no package manager: each image
# holds one program's closure. The tag is left to dockerTools (null), so it is
# the hash of the image's configuration derivation: the same inputs always give
# the same tag and the same bytes. `created` keeps its default (the epoch), so no
# date or commit hash ends up inside an image.
{ lib, dockerTools, redis, linkFarm, users-platform }:
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
  serviceImage = { name, port, description }:
    dockerTools.streamLayeredImage {
      name = "${repository}/${name}";
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
  redisOverridable = lib.functionArgs redis.override;
  redisServer =
    assert lib.assertMsg (redisOverridable ? withSystemd)
      "nixpkgs' redis no longer takes `withSystemd`; update nix/images.nix";
    (redis.override ({ withSystemd = false; }
      // lib.optionalAttrs (redisOverridable ? tlsSupport) { tlsSupport = false; })).overrideAttrs (_: {
      doCheck = false;
    });

  redisLicenses = lib.concatMapStringsSep " OR "
    (license: license.spdxId or "LicenseRef-${license.shortName or "unknown"}")
    (lib.toList redisServer.meta.license);

  redisImage = dockerTools.streamLayeredImage {
    name = "${repository}/redis";
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
        inherit (redisServer) version;
        licenses = redisLicenses;
        description = "Redis server for users-platform (nixpkgs redis, no systemd, no TLS)";
      };
    };
  };

  api-gateway = serviceImage {
    name = "api-gateway";
    port = 3000;
    description = "users-platform api-gateway: public HTTP API in front of the user-service";
  };

  user-service = serviceImage {
    name = "user-service";
    port = 3001;
    description = "users-platform user-service: user storage API backed by Redis";
  };
in
{
  inherit repository api-gateway user-service redisServer;
  redis = redisImage;

  # `nix build .#images`: one derivation with the three image streams.
  all = linkFarm "users-platform-images" [
    { name = "api-gateway"; path = api-gateway; }
    { name = "user-service"; path = user-service; }
    { name = "redis"; path = redisImage; }
  ];
}
