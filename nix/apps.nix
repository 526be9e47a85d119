# `nix run .#<app>` programs. The logic lives in nix/*.sh (shellchecked here and
# by writeShellApplication's build); Nix only passes store paths in through the
# environment.
{ lib, pkgs, python, nixpkgs, kubenix, images, manifests }:
let
  names = [ "api-gateway" "user-service" "redis" ];

  # deploy-dev: "<name> <image name> <tag> <stream script>" per image of this
  # machine's platform, one per line.
  imageLines = lib.concatMapStrings
    (name:
      let image = images.${name};
      in "${name} ${image.imageName} ${image.imageTag} ${image}\n")
    names;

  # push-images: "<name> <image name> <index tag> <arch>=<stream script>..." per
  # image, one per line: the members of each published multi-platform image.
  indexLines = lib.concatMapStrings
    (name: "${name} ${images.${name}.imageName} ${images.indexTags.${name}}${
      lib.concatMapStrings (arch: " ${arch}=${images.byPlatform.${arch}.${name}}")
        (builtins.attrNames images.byPlatform)}\n")
    names;
in
{
  deploy-dev = pkgs.writeShellApplication {
    name = "deploy-dev";
    meta.description = "Deploy the dev environment into a local kind cluster and smoke-test it";
    runtimeInputs = with pkgs; [ kind kubectl coreutils gnugrep openssl curl jq ];
    runtimeEnv = {
      UP_IMAGES = imageLines;
      UP_DEPLOY_DIR = "${manifests.deploy.dev}";
      UP_MANIFESTS = "${manifests.dev}";
    };
    text = builtins.readFile ./deploy-dev.sh;
  };

  push-images = pkgs.writeShellApplication {
    name = "push-images";
    meta.description = "Push the three images, each an index of its amd64 and arm64 images: nix run .#push-images -- REGISTRY [EXTRA_TAG...]";
    runtimeInputs = with pkgs; [ skopeo manifest-tool coreutils ];
    runtimeEnv.UP_IMAGE_INDEXES = indexLines;
    text = builtins.readFile ./push-images.sh;
  };

  render-manifests = pkgs.writeShellApplication {
    name = "render-manifests";
    meta.description = "Render k8s/rendered/{dev,prod}.yaml with the flake's locked kubenix and nixpkgs";
    # nix-instantiate is taken from the caller's PATH (whoever runs `nix run`
    # has Nix), so the evaluator matches the user's installation.
    runtimeInputs = with pkgs; [ git coreutils python ];
    runtimeEnv = {
      KUBENIX_SRC = "${kubenix}";
      NIXPKGS_LIB_SRC = "${nixpkgs}";
      PYTHON = "${python}/bin/python3";
    };
    text = builtins.readFile ./render-manifests.sh;
  };
}
