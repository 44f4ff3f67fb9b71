#!/usr/bin/env bash
# How long a 60-day backtest takes over 10^7 events (2,000 styles, 2 markets), from a
# cold rollup. Writes BENCHMARKS.md (section "Backtest"). Not a test.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/assay-target}"
events="${1:-10000000}"
cargo build --release -p assay-api
assay="$CARGO_TARGET_DIR/release/assay"
work="${ASSAY_BENCH_DIR:-$PWD/bench/out/ingest}"
mkdir -p "$work"
. bench/lib.sh
data=$(dataset "$events" 2000)
rm -rf "$data/rollup" "$work/backtest"
/usr/bin/time -f "%e %M" -o "$work/time.txt" "$assay" backtest --data "$data" \
  --from 2026-09-01 --to 2026-10-30 --out "$work/backtest" > "$work/backtest.txt"
read -r secs kb < "$work/time.txt"
summary=$(sed -n '1,/^perfect hindsight/p' "$work/backtest.txt")
section=$(cat <<MD
## Backtest

\`bench/backtest.sh $events\`, $(date -u +%F), release build, $(nproc) cores. A 60-day
replay (one decision run per day for each built-in policy — the default and the
first release's sell-through rule — then the baselines and hindsight) over $events generated events, the rollup built from scratch first:
**${secs} s** wall, peak RSS $(( kb / 1024 )) MiB.

\`\`\`
$summary
\`\`\`
MD
)
echo "$section" | python3 bench/write-section.py "Backtest"
echo "$section"
