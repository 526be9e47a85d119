# Fixed image references for the golden renders in k8s/rendered/ (scripts/render-manifests and
# the flake's drift check use the same set), so diffs show only real changes. They have the
# shape of what the deploy job renders, name:tag@sha256:<digest> (scripts/ci/render-pinned.sh);
# the digests are a hash of the name, not of any image.
let
  ref = name: "ghcr.io/users-platform/${name}:placeholder@sha256:${builtins.hashString "sha256" name}";
in
{
  api-gateway = ref "api-gateway";
  user-service = ref "user-service";
  redis = ref "redis";
}
