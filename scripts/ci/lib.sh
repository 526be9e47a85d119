#!/usr/bin/env bash
# Shared helpers for the scripts in scripts/ci/. Source it; do not run it.
# shellcheck shell=bash

log() { printf '==> %s\n' "$*" >&2; }
warn() { printf '::warning::%s\n' "$*" >&2; }
die() {
  printf '::error::%s\n' "$*" >&2
  exit 1
}

# require_cmd CMD...: fail with a clear message when a tool is missing.
require_cmd() {
  local c
  for c in "$@"; do
    command -v "$c" >/dev/null 2>&1 || die "required command not found: $c"
  done
}

# require_env VAR...: fail when a variable is unset or empty (never prints its value).
require_env() {
  local v
  for v in "$@"; do
    [[ -n "${!v:-}" ]] || die "required environment variable is empty: $v"
  done
}

# gh_output KEY VALUE: set a step output (multi-line safe); echoes to stderr outside Actions.
gh_output() {
  local key=$1 value=$2 delim
  if [[ -n "${GITHUB_OUTPUT:-}" ]]; then
    delim="EOF_$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
    printf '%s<<%s\n%s\n%s\n' "$key" "$delim" "$value" "$delim" >>"$GITHUB_OUTPUT"
  else
    printf '[output] %s=%s\n' "$key" "$value" >&2
  fi
}

# gh_env KEY VALUE: export a variable to the following steps of the job.
gh_env() {
  local key=$1 value=$2
  export "$key=$value"
  if [[ -n "${GITHUB_ENV:-}" ]]; then
    printf '%s=%s\n' "$key" "$value" >>"$GITHUB_ENV"
  fi
}

# gh_path DIR: prepend DIR to PATH for the following steps of the job.
gh_path() {
  export PATH="$1:$PATH"
  if [[ -n "${GITHUB_PATH:-}" ]]; then
    printf '%s\n' "$1" >>"$GITHUB_PATH"
  fi
}

# summary TEXT...: append Markdown to the job summary (no-op outside Actions).
summary() {
  if [[ -n "${GITHUB_STEP_SUMMARY:-}" ]]; then
    printf '%s\n' "$@" >>"$GITHUB_STEP_SUMMARY"
  fi
}

# tmp_dir: a private scratch directory under RUNNER_TEMP (or TMPDIR).
tmp_dir() {
  mktemp -d "${RUNNER_TEMP:-${TMPDIR:-/tmp}}/users-platform.XXXXXX"
}

# wait_rollouts NS TIMEOUT WORKLOAD...: `kubectl rollout status` of all workloads in parallel
# (one deadline for all, so the worst case is TIMEOUT, not TIMEOUT x workloads). Prints the
# workloads that did not become ready and returns 1 if there is any.
wait_rollouts() {
  local ns=$1 timeout=$2 w not_ready=()
  shift 2
  local -A pids=()
  for w in "$@"; do
    kubectl -n "$ns" rollout status "$w" --timeout="$timeout" >&2 &
    pids[$w]=$!
  done
  for w in "$@"; do
    wait "${pids[$w]}" || not_ready+=("$w")
  done
  printf "%s" "${not_ready[*]}"
  ((${#not_ready[@]} == 0))
}
