#!/usr/bin/env bash
# Analysts' own query shapes: assay against DuckDB and Polars, each shape in one run.
#
#   bench/shapes.sh [EVENTS...]      default: 10000000 100000000
#
# For each size: the generated 60-day season of bench/run.sh (2,000 styles, 2 markets,
# seed 7; reused if already there) with a published decision run (`assay decide
# --publish`, made once). Then every query of bench/shapes/ (SHAPES="a b" for some):
#   - assay      `assay sql` over the dataset (DataFusion, assay's session)
#   - duckdb     the same SQL text over the same Parquet files
#   - polars     the same question in Polars' lazy API, streaming engine (bench/peers.py)
# one warm-up each, whose answers must be equal (bench/same_answer.py: the script stops
# on a wrong answer, never on a slow one), then RUNS (default 5) timed rounds with the
# engines alternating. Wall time and peak RSS of the whole process from /usr/bin/time.
# Writes BENCHMARKS.md (section "Analyst query shapes"; the notes after its
# `<!-- notes -->` line stay, see bench/write-section.py). Not a test: the numbers depend
# on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/assay-target}"
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(10000000 100000000)
styles="${STYLES:-2000}"
runs="${RUNS:-5}"
read -r -a shapes <<< "${SHAPES:-$(cd bench/shapes && ls *.sql | sed 's/\.sql$//' | tr '\n' ' ')}"

cargo build --release --all-features -p assay-api
assay="$CARGO_TARGET_DIR/release/assay"
work="${ASSAY_BENCH_DIR:-$PWD/bench/out/ingest}"
out="$work/shapes"
mkdir -p "$out"
. bench/lib.sh
python=$(peers_python)

# One timed run of SHAPE on ENGINE: prints "SECONDS MIB", the answer in $out/SHAPE.ENGINE.csv.
run_engine() {
  local engine=$1 shape=$2 data=$3 published=$4 answer="$out/$2.$1.csv"
  case $engine in
    assay) timed "$answer" "$assay" sql --data "$data" --format csv -- "$(cat "bench/shapes/$shape.sql")" ;;
    *) timed "$answer" "$python" bench/peers.py "$engine" "$data" "$shape" "$published" ;;
  esac
}

engines=(assay duckdb polars)
rows=""
for n in "${sizes[@]}"; do
  data=$(dataset "$n" "$styles")
  if [ "$("$assay" sql --data "$data" --format csv "SELECT count(*) FROM decisions" | tail -1)" = 0 ]; then
    "$assay" decide --data "$data" --publish > /dev/null
  fi
  published=$("$assay" sql --data "$data" --format csv "SELECT DISTINCT run_id FROM decisions" | tail -1)
  for shape in "${shapes[@]}"; do
    for e in "${engines[@]}"; do run_engine "$e" "$shape" "$data" "$published" > /dev/null; done
    for e in duckdb polars; do
      "$python" bench/same_answer.py "$out/$shape.assay.csv" "$out/$shape.$e.csv" "$shape at $n events, $e"
    done
    declare -A times=() rss=()
    for ((i = 0; i < runs; i++)); do
      for e in "${engines[@]}"; do
        read -r s mb < <(run_engine "$e" "$shape" "$data" "$published")
        times[$e]+="$s "
        rss[$e]+="$mb "
      done
    done
    row=$("$python" - "$n" "$shape" "${times[assay]}" "${rss[assay]}" "${times[duckdb]}" \
      "${rss[duckdb]}" "${times[polars]}" "${rss[polars]}" <<'PY'
import statistics, sys
events, shape = int(sys.argv[1]), sys.argv[2]
vals = [list(map(float, a.split())) for a in sys.argv[3:]]
(at, am), (dt, dm), (pt, pm) = (vals[0], vals[1]), (vals[2], vals[3]), (vals[4], vals[5])
a, d, p = statistics.median(at), statistics.median(dt), statistics.median(pt)
print(f"| {events:,} | `{shape}` | {a:.2f} s | {d:.2f} s | {p:.2f} s | **{a / d:.2f}** | {p / d:.2f} "
      f"| {max(am):.0f} / {max(dm):.0f} / {max(pm):.0f} MiB |")
PY
)
    echo "$row"
    rows+="$row"$'\n'
    unset times rss
  done
done

machine="$(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(free -g | awk '/Mem:/ {print $2}') GiB RAM"
body="\`bench/shapes.sh ${sizes[*]}\`, $(date -u +%F), release build, ${machine}. The generated
60-day seasons of bench/run.sh (${styles} styles, 2 markets) with a published decision run.
Each query of \`bench/shapes/\` as an analyst writes it: \`assay sql\` and DuckDB run the same
text over the same Parquet files, Polars the same question in its lazy API (streaming
engine, \`bench/peers.py\`). Every answer checked equal to assay's before timing; then
${runs} rounds, engines alternating; median wall time of the whole process; peak RSS
(assay / DuckDB / Polars).

| events | shape | assay | DuckDB | Polars | assay ÷ DuckDB | Polars ÷ DuckDB | peak RSS |
|---:|---|---:|---:|---:|---:|---:|---:|
${rows}
Targets (issue 23): every shape ≤ 1.0 × DuckDB's time, the funnel shapes ≤ 0.8 ×, peak
RSS ≤ 1 GiB at 10⁸ events."
printf '## Analyst query shapes\n\n%s\n' "$body" |
  python3 bench/write-section.py "Analyst query shapes"
echo "$body"
