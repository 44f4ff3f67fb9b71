#!/usr/bin/env bash
# Round-trip latency (p50/p99) of a small query over pgwire (simple and prepared), Flight
# SQL (prepared) and HTTP against a real `assay serve` (release build) on loopback.
# Writes BENCHMARKS.md (section "SQL round trips"). ASSAY=path/to/assay measures another
# build (say which in BUILD="debug build"). Needs the test venv (scripts/deps). Not a test.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/assay-target}"
VENV="${ASSAY_VENV:-$HOME/.cache/assay-venv}"
if [ -z "${ASSAY:-}" ]; then
  cargo build --release -p assay-api --all-features
  ASSAY="$CARGO_TARGET_DIR/release/assay"
fi
section=$("$VENV/bin/python" bench/sql_latency.py "$ASSAY")
echo "$section" | python3 bench/write-section.py "SQL round trips"
echo "$section"
