#!/usr/bin/env bash
# nix run .#render-manifests -- [OUTDIR]
#
# Runs the repository's scripts/render-manifests (default OUTDIR: k8s/rendered/,
# the golden files the manifest drift check compares against) with the flake's
# locked kubenix and nixpkgs source trees, so it needs no network of its own.
# Run it from anywhere inside the checkout.
#
# Provided by the flake (runtimeEnv of the app):
#   KUBENIX_SRC, NIXPKGS_LIB_SRC  store paths of the locked inputs
#   PYTHON                        a python3 with PyYAML
set -euo pipefail

root=$(git rev-parse --show-toplevel 2>/dev/null || pwd)
script="$root/scripts/render-manifests"
[[ -x $script ]] || {
  echo "render-manifests: $script not found; run this from the users-platform checkout" >&2
  exit 1
}
command -v nix-instantiate >/dev/null || {
  echo "render-manifests: nix-instantiate is not on PATH" >&2
  exit 1
}
export KUBENIX_SRC NIXPKGS_LIB_SRC PYTHON
export USERS_PLATFORM_ROOT="$root"
exec "$script" "$@"
