#!/usr/bin/env bash
# Write the Slack incoming-webhook payload for a deploy result.
#
#   scripts/ci/notify-payload.sh OUT_FILE
#
# Environment: STATUS (success|failure|cancelled), ENVIRONMENT, IMAGE_TAGS ("name:tag ..."),
# optionally TIMEOUT_MINUTES (the job's timeout, named in the message of a cancelled run),
# and the runner's GITHUB_SHA, GITHUB_REF_NAME, GITHUB_ACTOR, GITHUB_SERVER_URL,
# GITHUB_REPOSITORY, GITHUB_RUN_ID. Values are JSON-encoded with jq, never spliced in.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

out=${1:?usage: $0 OUT_FILE}
require_cmd jq
require_env STATUS ENVIRONMENT GITHUB_SHA GITHUB_REPOSITORY GITHUB_RUN_ID

server=${GITHUB_SERVER_URL:-https://github.com}
run_url="$server/$GITHUB_REPOSITORY/actions/runs/$GITHUB_RUN_ID"
commit_url="$server/$GITHUB_REPOSITORY/commit/$GITHUB_SHA"
short_sha=${GITHUB_SHA:0:7}
# Anything but success is a failure for whoever is on call: a job that hit its timeout (or was
# cancelled) ends as `cancelled`, possibly half-way through an apply or a rollback.
case "$STATUS" in
  success) icon=":white_check_mark:" verb="succeeded" ;;
  failure) icon=":rotating_light:" verb="FAILED" ;;
  cancelled) icon=":rotating_light:" verb="FAILED (cancelled or timed out${TIMEOUT_MINUTES:+ after ${TIMEOUT_MINUTES} min}; check the rollout state now)" ;;
  *) icon=":rotating_light:" verb="FAILED ($STATUS)" ;;
esac

jq -n \
  --arg icon "$icon" --arg verb "$verb" --arg env "$ENVIRONMENT" \
  --arg sha "$short_sha" --arg commit_url "$commit_url" --arg run_url "$run_url" \
  --arg ref "${GITHUB_REF_NAME:-}" --arg actor "${GITHUB_ACTOR:-}" \
  --arg tags "${IMAGE_TAGS:-unknown}" --arg repo "$GITHUB_REPOSITORY" '
  ($tags | split(" ") | map(select(length > 0)) | map("`" + . + "`") | join("\n")) as $tag_lines
  | {
      text: "\($icon) \($repo): deploy to \($env) \($verb) (\($sha))",
      blocks: [
        { type: "section",
          text: { type: "mrkdwn", text: "\($icon) *Deploy to `\($env)` \($verb)*" } },
        { type: "section",
          fields: [
            { type: "mrkdwn", text: "*Environment*\n\($env)" },
            { type: "mrkdwn", text: "*Commit*\n<\($commit_url)|\($sha)> on `\($ref)`" },
            { type: "mrkdwn", text: "*Images*\n\($tag_lines)" },
            { type: "mrkdwn", text: "*Triggered by*\n\($actor)" }
          ] },
        { type: "actions",
          elements: [ { type: "button", text: { type: "plain_text", text: "Open the run" }, url: $run_url } ] }
      ]
    }' >"$out"
log "wrote Slack payload to $out"
