#!/usr/bin/env bash
# Ingest throughput and the cost of a daily decision run as history grows.
#
#   bench/ingest-rollup.sh [EVENTS...]      default: 10000000 100000000
#
# For each history size: generate a 60-day season of the same catalog size (STYLES,
# default 2000: more events means busier styles, not more of them), drop its last day,
# build the rollup, then ingest the same one-day batch into every history (the first
# dataset's last day, as canonical Parquet partition files) and time the decision run
# that follows. The same funnel is timed from raw events (over all history: what a run
# cost before the rollup). Then ingest throughput at volume: the first dataset's whole
# history as canonical Parquet, and its rows exported as a REES46 CSV.
#
# Writes BENCHMARKS.md (section "Ingest and incremental decisions"). Not a test:
# numbers depend on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/assay-target}"
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(10000000 100000000)
styles="${STYLES:-2000}"

cargo build --release -p assay-api
assay="$CARGO_TARGET_DIR/release/assay"
work="${ASSAY_BENCH_DIR:-$PWD/bench/out/ingest}"
mkdir -p "$work"
. bench/lib.sh

# Wall seconds and peak RSS (MiB) of a command: "SECONDS MIB".
measure() {
  /usr/bin/time -f "%e %M" -o "$work/time.txt" "$@" > "$work/last.out"
  awk '{printf "%.2f %.0f\n", $1, $2 / 1024}' "$work/time.txt"
}

rows=""
for n in "${sizes[@]}"; do
  data=$(dataset "$n" "$styles")
  run="$work/run-$n"
  rm -rf "$run" && mkdir -p "$run"
  cp -al "$data/." "$run/"   # hard links: the run never rewrites an event file
  rm -rf "$run/rollup" "$run/decisions" "$run/ingest" "$run/.complete"
  last=$(ls "$run/events" | sort | tail -1)
  rm -rf "$run/events/$last"
  if [ -z "${batch:-}" ]; then
    # The one-day batch every history receives: the first dataset's last day.
    batch="$work/batch"
    rm -rf "$batch" && mkdir -p "$batch"
    cp "$data/events/$last"/*.parquet "$batch/"
    day_events=$("$assay" sql --data "$data" --format csv \
      "SELECT COUNT(*) FROM events WHERE event_date = DATE '${last#event_date=}'" | tail -1)
  fi
  total=$("$assay" sql --data "$run" --format csv "SELECT COUNT(*) FROM events" | tail -1)

  read -r rebuild_s rebuild_mb < <(measure "$assay" rollup --data "$run" --rebuild)
  read -r ingest_s ingest_mb < <(measure "$assay" ingest --json --format events-parquet \
    --data "$run" "$batch"/*.parquet)
  ingest_json="$work/last.out"
  refresh_s=$(python3 -c 'import json,sys; print("%.2f" % json.load(open(sys.argv[1]))["rollup"]["seconds"])' "$ingest_json")
  ingest_rate=$(python3 -c 'import json,sys; print("%.0f" % json.load(open(sys.argv[1]))["ingest"]["rows_per_second"])' "$ingest_json")
  # Warm the page cache for both runs alike, then time.
  "$assay" decide --data "$run" --format json >/dev/null
  read -r decide_s decide_mb < <(measure "$assay" decide --data "$run" --format json)
  # A full run from raw events: no rollup yet, so it builds one, then decides.
  full="$work/full-$n"
  rm -rf "$full" && mkdir -p "$full"
  cp -al "$run/." "$full/"
  rm -rf "$full/rollup" "$full/decisions"
  read -r full_s full_mb < <(measure "$assay" decide --data "$full" --format json)
  rm -rf "$full"
  duck="n/a"
  if [ -n "${FUNNEL_MEDIANS:-}" ] && [ -f "$FUNNEL_MEDIANS/duckdb-$n.median" ]; then
    duck_s=$(cat "$FUNNEL_MEDIANS/duckdb-$n.median")
    duck=$(python3 -c 'import sys; d, a = map(float, sys.argv[1:]); print(f"{d:.2f} s: {d / a:.1f} ×")' "$duck_s" "$decide_s")
  fi
  read -r raw_s raw_mb < <(measure "$assay" sql --data "$run" --format csv \
    "SELECT COUNT(*), SUM(units_sold) FROM style_funnel")
  parquet_rate=$(python3 -c 'import sys; print("%.0f" % (int(sys.argv[1]) / float(sys.argv[2])))' "$day_events" "$ingest_s")
  rows+="| ${total} | ${day_events} | ${ingest_s} s (${ingest_rate} rows/s staged; ${parquet_rate} events/s whole command, rollup ${refresh_s} s) | ${decide_s} s / ${decide_mb} MiB | ${duck} | ${full_s} s / ${full_mb} MiB | ${raw_s} s / ${raw_mb} MiB | ${rebuild_s} s |"$'\n'
done

# REES46: the first dataset's events as a REES46 CSV (view / cart / purchase rows).
first="$work/gen-${sizes[0]}-$styles"
rees="$work/rees46.csv"
if [ ! -f "$rees" ]; then
  "$assay" sql --data "$first" --format csv "
    SELECT to_char(e.event_time, '%Y-%m-%d %H:%M:%S UTC') AS event_time, e.event_type,
           e.style_id AS product_id, s.category AS category_id, s.category AS category_code,
           s.brand, e.price, e.user_id, e.session_id AS user_session
    FROM events e JOIN styles s ON e.style_id = s.style_id
    WHERE e.event_type IN ('view', 'cart', 'purchase') ORDER BY 1" > "$rees"
fi
rees_rows=$(( $(wc -l < "$rees") - 1 ))
rees_mb=$(( $(stat -c %s "$rees") / 1048576 ))
rm -rf "$work/rees-ds"
read -r rees_s rees_rss < <(measure "$assay" ingest --json --no-rollup --format rees46 \
  --market US --data "$work/rees-ds" "$rees")
rees_rate=$(python3 -c 'import json,sys; print("%.0f" % json.load(open(sys.argv[1]))["ingest"]["rows_per_second"])' "$work/last.out")

# Canonical Parquet at volume: the first dataset's whole history (its 60 day files) into
# an empty dataset. The one-day batch above is too small to tell throughput from the
# command's fixed costs (opening the dataset, the rollup refresh).
rm -rf "$work/parquet-ds"
read -r parquet_s parquet_rss < <(measure "$assay" ingest --json --no-rollup \
  --format events-parquet --data "$work/parquet-ds" "$first"/events/*/*.parquet)
parquet_rows=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ingest"]["rows_read"])' "$work/last.out")
parquet_bulk=$(python3 -c 'import json,sys; print("%.0f" % json.load(open(sys.argv[1]))["ingest"]["rows_per_second"])' "$work/last.out")
parquet_mb=$(( $(du -sk "$first/events" | cut -f1) / 1024 ))
rm -rf "$work/parquet-ds"

cpu=$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1)
section=$(cat <<MD
## Ingest and incremental decisions

\`bench/ingest-rollup.sh ${sizes[*]}\`, $(date -u +%F), release build, $(nproc) cores ($cpu).
Generated 60-day seasons of ${styles} styles in 2 markets: a bigger history means busier
styles, not more of them. Each history's last day is dropped and the same one-day batch
(the first dataset's last day, canonical Parquet) is ingested into every history, after
which a decision run follows. "Decision run" reads the daily
rollup for the past days and raw events only for the last; "funnel from raw events" is
the same funnel computed over all history (\`SELECT … FROM style_funnel\`), which is what
every run cost before the rollup. "Full run" is a decision run on the same history with
no rollup yet (it builds one, then decides). "DuckDB funnel" is DuckDB's median time for
the per-style funnel over the same raw events (section "Funnel: assay, DuckDB, Polars",
same run of \`bench/run.sh\`) and how many times longer it takes than assay's decision
run after the new day. Times are wall-clock of the whole command (process
start, opening the dataset, writing the run), peak RSS from \`/usr/bin/time\`.

| events in history (before the batch) | the batch's events | ingest of the batch (canonical Parquet) | decision run after the new day | DuckDB funnel over raw events | full run from raw events | assay funnel from raw events | rollup rebuild |
|---:|---:|---|---:|---:|---:|---:|---:|
${rows}
Canonical Parquet ingest at volume: ${parquet_rows} events (${parquet_mb} MiB in 60 day
files) into an empty dataset in ${parquet_s} s: **${parquet_bulk} events/s**
(\`--no-rollup\`: reading, checking, dedupe, writing and publish), peak RSS ${parquet_rss} MiB.

REES46 CSV ingest: ${rees_rows} rows (${rees_mb} MiB) in ${rees_s} s:
**${rees_rate} rows/s** (\`--no-rollup\`: parsing, staging, dedupe and publish only), peak
RSS ${rees_rss} MiB, bounded by the in-memory buffer, not by the file's size.
MD
)

echo "$section" | python3 bench/write-section.py "Ingest and incremental decisions"
echo "$section"
