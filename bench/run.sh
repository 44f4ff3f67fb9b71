#!/usr/bin/env bash
# assay against DuckDB and Polars on the same work, side by side, in one run.
#
#   bench/run.sh [EVENTS...]      default: 10000000 100000000
#
# For each size: a generated 60-day season of STYLES (default 2000) styles in 2 markets
# (`assay generate`, seed 7; reused if already there), then the per-style launch funnel
# over raw events (bench/funnel.sql: views, carts, purchases, units, revenue and distinct
# buyers inside each style's first 21 days, joined to styles) by
#   - assay      `assay sql` over the dataset (DataFusion, assay's session settings)
#   - duckdb     the same SQL text over the same Parquet files
#   - polars     the same funnel in Polars' lazy API, streaming engine
# alternating engines: one warm-up each, then RUNS (default 5) timed rounds. Every
# engine's answer is checked equal to assay's (bench/same_answer.py). Wall time and
# peak RSS come from /usr/bin/time and include process start, as a user would see.
# Then bench/ingest-rollup.sh on the same datasets: a full decision run from raw
# events, a decision run after one new day (against DuckDB's funnel time from above),
# and ingest of canonical Parquet and of REES46 CSV, rows/s.
#
# DuckDB and Polars are installed from PyPI into $ASSAY_BENCH_VENV (default
# ~/.cache/assay-bench-venv). Writes BENCHMARKS.md (section "Funnel: assay, DuckDB,
# Polars"). Not a test: the numbers depend on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/assay-target}"
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(10000000 100000000)
styles="${STYLES:-2000}"
runs="${RUNS:-5}"

cargo build --release -p assay-api
assay="$CARGO_TARGET_DIR/release/assay"
work="${ASSAY_BENCH_DIR:-$PWD/bench/out/ingest}"
mkdir -p "$work/funnel"
. bench/lib.sh
python=$(peers_python)

# One timed run: "SECONDS MIB", the answer in $work/funnel/ENGINE.csv.
run_engine() {
  local engine=$1 data=$2 out="$work/funnel/$1.csv"
  case $engine in
    assay) timed "$out" "$assay" sql --data "$data" --format csv -- "$(cat bench/funnel.sql)" ;;
    *) timed "$out" "$python" bench/peers.py "$engine" "$data" ;;
  esac
}

engines=(assay duckdb polars)
rows=""
for n in "${sizes[@]}"; do
  data=$(dataset "$n" "$styles")
  events=$("$assay" sql --data "$data" --format csv "SELECT COUNT(*) FROM events" | tail -1)
  declare -A times=() rss=()
  for e in "${engines[@]}"; do run_engine "$e" "$data" >/dev/null; done   # warm-up
  for e in duckdb polars; do
    "$python" bench/same_answer.py "$work/funnel/assay.csv" "$work/funnel/$e.csv" "funnel at $n events, $e"
  done
  for ((i = 0; i < runs; i++)); do
    for e in "${engines[@]}"; do
      read -r s mb < <(run_engine "$e" "$data")
      times[$e]+="$s "
      rss[$e]+="$mb "
    done
  done
  # DuckDB's median funnel time, for the decision-run comparison that follows.
  "$python" -c 'import statistics, sys; print(statistics.median(map(float, sys.argv[1].split())))' \
    "${times[duckdb]}" > "$work/funnel/duckdb-$n.median"
  rows+=$("$python" - "$events" "${times[assay]}" "${rss[assay]}" "${times[duckdb]}" \
    "${rss[duckdb]}" "${times[polars]}" "${rss[polars]}" <<'PY'
import statistics, sys
events = int(sys.argv[1])
vals = [list(map(float, a.split())) for a in sys.argv[2:]]
(at, am), (dt, dm), (pt, pm) = (vals[0], vals[1]), (vals[2], vals[3]), (vals[4], vals[5])
duck = statistics.median(dt)
out = []
for name, t, m in (("assay", at, am), ("DuckDB", dt, dm), ("Polars (streaming)", pt, pm)):
    med = statistics.median(t)
    out.append(f"| {events:,} | {name} | {med:.2f} s | {min(t):.2f}–{max(t):.2f} s | {med / duck:.2f} | {max(m):.0f} MiB |")
print("\n".join(out))
PY
)$'\n'
  unset times rss
done

machine="$(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(free -g | awk '/Mem:/ {print $2}') GiB RAM"
body="\`bench/run.sh ${sizes[*]}\`, $(date -u +%F), release build, ${machine}. Generated 60-day
seasons of ${styles} styles in 2 markets. The per-style launch funnel over raw events
(\`bench/funnel.sql\`, the same text for assay and DuckDB; the same funnel in Polars' lazy
API with the streaming engine), engines alternating, one warm-up each, then ${runs} timed
rounds; every answer checked equal to assay's. Wall time of the whole process (start,
planning, reading Parquet, writing the CSV answer); peak RSS from \`/usr/bin/time\`.

| events | engine | median | min–max | ratio to DuckDB | peak RSS |
|---:|---|---:|---:|---:|---:|
${rows}
Targets (the performance issue): assay ≤ 0.8 × DuckDB's time at 10⁸ events, peak RSS ≤ 1 GiB.

What it took: the first version of \`bench/funnel.sql\` joined on
\`event_time < launch_at + INTERVAL '21 days'\`. DataFusion 55 evaluates that addition for
every probed row inside the hash join's filter (EXPLAIN ANALYZE: 1.29 s of the join's
1.9 s CPU at 10⁷), and assay took 1.00 s at 10⁷ (1.45 × DuckDB) and 8.58 s at 10⁸
(2.31 × DuckDB, 270 MiB). Computing each style's window end once, in a CTE over
\`styles\` — as assay's own \`style_funnel\` view always has — halved assay's time at
10⁷ and cut it by two thirds at 10⁸; DuckDB's time barely moved (0.69 → 0.68 s,
3.72 → 3.73 s), Polars' rose slightly at 10⁷. The same text runs in both SQL engines."
printf '## Funnel: assay, DuckDB, Polars\n\n%s\n' "$body" |
  python3 bench/write-section.py "Funnel: assay, DuckDB, Polars"
echo "$body"

# The same run goes on with decision runs (full, and after one new day) and ingest, on
# the same datasets, compared with DuckDB's funnel times measured above.
FUNNEL_MEDIANS="$work/funnel" bench/ingest-rollup.sh "${sizes[@]}"
