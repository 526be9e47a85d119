# Fixed image references for the golden renders in k8s/rendered/ (scripts/render-manifests and
# the flake's drift check use the same set), so diffs show only real changes.
{
  api-gateway = "ghcr.io/users-platform/api-gateway:placeholder";
  user-service = "ghcr.io/users-platform/user-service:placeholder";
  redis = "ghcr.io/users-platform/redis:placeholder";
}
