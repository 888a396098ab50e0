#!/usr/bin/env bash
# The CI recipe (issue 7, docs/ci.md): train a model, register it with its metrics, push it to
# the registry on S3, promote it to staging through the gates, and start a canary release.
# GitHub Actions (github-actions.yml) and GitLab CI (gitlab-ci.yml) both run this script, and
# tests/integrations/test_ci.py runs it against a local S3 server: all run the same steps.
#
# Every step is safe to re-run: a re-run of the same MODEL_VERSION changes nothing.
#
# Environment:
#   MODEL_VERSION     the version to register (required; pin it, e.g. 1.0.$GITHUB_RUN_NUMBER)
#   REGISTRY_URL      the registry remote, e.g. s3://my-bucket/registry (required)
#   S3_ENDPOINT_URL   an S3-compatible endpoint (MinIO...), optional
#   MODEL             model name (default fraud-detector)
#   MREG_STORE        the runner's local store (default ./.mreg-ci); MREG_AUTHOR: who acts
#   CANARY_STEPS      the canary's step plan (default 5,25,50,100)
#   TRAIN_ARGS        extra arguments of train.py; BUILD_DIR: its output (default ./build)
#   REASON            recorded with each change (default "CI build of MODEL VERSION")
#   AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION (or a role): S3 credentials
set -euo pipefail

: "${MODEL_VERSION:?set MODEL_VERSION (pin it: a re-run must register the same version)}"
: "${REGISTRY_URL:?set REGISTRY_URL, e.g. s3://my-bucket/registry}"
MODEL=${MODEL:-fraud-detector}
BUILD=${BUILD_DIR:-build}
CANARY_STEPS=${CANARY_STEPS:-5,25,50,100}
export MREG_STORE=${MREG_STORE:-$PWD/.mreg-ci}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REASON=${REASON:-CI build of $MODEL $MODEL_VERSION}

step() { printf '\n== %s\n' "$*"; }
# One field of the JSON document on stdin: json_get canary version
json_get() {
  python3 -c 'import json, sys
v = json.load(sys.stdin)
for key in sys.argv[1:]:
    v = v.get(key) if isinstance(v, dict) else None
print("" if v is None else v)' "$@"
}

step "store and registry"
mreg init "$MREG_STORE" >/dev/null
cp "$HERE/store-config.mreg.yaml" "$MREG_STORE/.modelreg/config.yaml"   # the gates, from git
mreg validate "$MREG_STORE/.modelreg/config.yaml"
remote_options=()
if [ -n "${S3_ENDPOINT_URL:-}" ]; then remote_options+=(--option "endpoint_url=$S3_ENDPOINT_URL"); fi
mreg remote add origin "$REGISTRY_URL" ${remote_options[@]+"${remote_options[@]}"}

step "train"
# shellcheck disable=SC2086 # TRAIN_ARGS is a list of arguments
python3 "$HERE/train.py" --out "$BUILD" ${TRAIN_ARGS:-}

step "sync with the registry"
# Promotions and releases must start from the registry's state, and a push needs the
# registry's whole audit trail: pull the model when the registry has news of it, everything
# when it only has other models' news (a model's first run in a shared registry), nothing when
# it is empty (the first push creates it).
scope=$(mreg status origin --remote --json | python3 -c 'import json, sys
s, model = json.load(sys.stdin), sys.argv[1]
mine = [v for v in s["versions_to_pull"] if v.split("@")[0] == model]
refs = [r for r in s["refs"] if r.startswith((f"models/{model}/", f"releases/{model}.yaml"))]
print(model if mine or refs else "*" if s["audit"]["remote_only"] else "")' "$MODEL")
if [ "$scope" = "*" ]; then mreg pull origin; elif [ -n "$scope" ]; then mreg pull origin "$MODEL"; fi

step "register $MODEL@$MODEL_VERSION"
mreg register "$MODEL" "$BUILD/model.json" --version "$MODEL_VERSION" \
  --params-file "$BUILD/params.json" --metrics-file "$BUILD/metrics.json" \
  --data "$BUILD/data/train.csv" -m "$REASON" -t ci
mreg push origin "$MODEL@$MODEL_VERSION"   # published with its metrics, whatever the gates say

step "promote to staging (through the staging gates)"
mreg promote "$MODEL@$MODEL_VERSION" --to staging --reason "$REASON"

step "canary"
status=$(mreg release status "$MODEL" --json)
production=$(json_get production <<<"$status")
state=$(json_get state <<<"$status")
canary=$(json_get canary version <<<"$status")
if [ -z "$production" ]; then
  echo "no production version yet: $MODEL_VERSION becomes the first (through the production gates)"
  mreg promote "$MODEL@$MODEL_VERSION" --to production --reason "first version: $REASON"
elif [ "$production" = "$MODEL_VERSION" ]; then
  echo "$MODEL_VERSION is already in production: nothing to release"
elif [ "$state" = progressing ] || [ "$state" = paused ]; then
  if [ "$canary" != "$MODEL_VERSION" ]; then
    echo "a release of $MODEL is $state with canary $canary: promote or abort it first" >&2
    exit 1
  fi
  echo "the canary release of $MODEL_VERSION is already $state"
else
  mreg release start "$MODEL" --canary "$MODEL_VERSION" --steps "$CANARY_STEPS" --reason "$REASON"
fi

step "publish"
mreg push origin "$MODEL"
mreg release export "$MODEL" --format istio --output "$BUILD/istio.yaml"
mreg release status "$MODEL"
