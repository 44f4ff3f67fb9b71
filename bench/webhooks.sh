#!/usr/bin/env bash
# Webhook delivery latency (p50/p99) and outbox throughput of `assay serve` (release
# build) with a receiver on loopback. Writes BENCHMARKS.md (section "Webhooks").
# ASSAY=path/to/assay measures another build. Not a test.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/assay-target}"
if [ -z "${ASSAY:-}" ]; then
  cargo build --release -p assay-api
  ASSAY="$CARGO_TARGET_DIR/release/assay"
fi
section=$(python3 bench/webhooks.py "$ASSAY")
echo "$section" | python3 bench/write-section.py "Webhooks"
echo "$section"
