#!/usr/bin/env bash
# nix fmt [-- FILE...]: nixpkgs-fmt on the given files, or on every *.nix file of
# the checkout (tracked or new, .gitignore respected) when none are given.
set -euo pipefail

# Older Nix versions pass "." when no file is given: treat it like no argument,
# so ignored trees (target/, .venv/) are not walked.
if [[ $# -eq 1 && $1 == . ]]; then
  set --
fi
if [[ $# -gt 0 ]]; then
  exec nixpkgs-fmt "$@"
fi

if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  cd "$(git rev-parse --show-toplevel)"
  mapfile -d '' files < <(git ls-files -z --cached --others --exclude-standard -- '*.nix')
else
  mapfile -d '' files < <(find . \( -name target -o -name .venv -o -name .git -o -name node_modules \) -prune \
    -o -type f -name '*.nix' -print0)
fi
existing=()
for file in "${files[@]}"; do
  [[ -f $file ]] && existing+=("$file")
done
if [[ ${#existing[@]} -eq 0 ]]; then
  echo "nix fmt: no .nix files found" >&2
  exit 0
fi
exec nixpkgs-fmt "${existing[@]}"
