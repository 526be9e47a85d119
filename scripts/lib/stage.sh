# shellcheck shell=bash
# Sourced by every scripts/check-* stage (and scripts/bench): one way to report, to fail and to
# find tools. A stage never installs anything: here scripts/install-deps does that once, in
# `nix flake check` the tools come from nixpkgs. A stage that lacks a tool names it and stops,
# so a missing install step fails loudly instead of being papered over by the stage.
#
# After sourcing: the working directory is the repository root ($root), .venv/bin and
# ~/.cargo/bin are on PATH when they exist, and $stage is the stage's name for messages.

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root" || exit 1
stage=${stage:-$(basename "$0")}
stage=${stage#check-}

for dir in "$root/.venv/bin" "$HOME/.cargo/bin"; do
  if [[ -d $dir && :$PATH: != *":$dir:"* ]]; then PATH=$dir:$PATH; fi
done
export PATH

say() { printf '[%s] %s\n' "$stage" "$*"; }

fail() {
  printf '[%s] FAIL: %s\n' "$stage" "$*" >&2
  exit 1
}

# need TOOL...: every tool is on PATH, or the stage stops naming the first missing one.
need() {
  local tool
  for tool; do
    command -v "$tool" >/dev/null 2>&1 || fail "$tool is missing: run scripts/install-deps (or use nix develop)"
  done
}

# need_python MODULE...: the python3 on PATH imports every module.
need_python() {
  local module
  need python3
  for module; do
    python3 -c "import $module" 2>/dev/null || fail "python module $module is missing: run scripts/install-deps"
  done
}

# The users-platform binary the runtime stages exercise: $USERS_PLATFORM_BIN (the flake passes
# its build), else the debug build, built here when cargo is available.
users_platform_bin() {
  local bin=${USERS_PLATFORM_BIN:-${CARGO_TARGET_DIR:-$root/target}/debug/users-platform}
  if [[ ! -x $bin && -z ${USERS_PLATFORM_BIN:-} ]] && command -v cargo >/dev/null 2>&1; then
    say "building $bin" >&2
    cargo build --locked --quiet --bin users-platform >&2
  fi
  [[ -x $bin ]] || fail "$bin is not an executable: cargo build, or set USERS_PLATFORM_BIN"
  (cd "$(dirname "$bin")" && printf '%s/%s\n' "$PWD" "$(basename "$bin")")
}
