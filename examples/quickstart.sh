#!/usr/bin/env bash
# A registry round trip in a scratch directory: register two versions, promote, roll back.
# Run from anywhere: bash examples/quickstart.sh
set -euo pipefail
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
export MREG_AUTHOR="Quickstart <quickstart@example.com>"

mreg init
printf 'weights v1' > model.onnx
mreg register fraud-detector model.onnx --version 1.0.0 --no-code \
  --param lr=0.01 --metric test.f1=0.91 -m "first model"
printf 'weights v2' > model.onnx
mreg register fraud-detector model.onnx --bump minor --no-code \
  --param lr=0.005 --metric test.f1=0.93 -m "lower learning rate"
mreg promote fraud-detector@1.0.0 --to production --reason "first release"
mreg promote fraud-detector@1.1.0 --to production --reason "better f1"
mreg rollback fraud-detector --reason "conversion dropped"
mreg show fraud-detector@production --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print("production runs", d["version"], d["id"][:12])'
mreg history fraud-detector
mreg verify
