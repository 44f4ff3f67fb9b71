# Shared by the bench scripts: source it after setting $assay and $work.

# The generated 60-day season of STYLES styles with N events (seed 7), made once and
# reused: prints its directory.
dataset() {
  local n=$1 styles=$2 data="$work/gen-$1-$2"
  if [ ! -f "$data/.complete" ]; then
    rm -rf "$data"
    "$assay" generate --out "$data" --styles "$styles" --days 60 --events "$n" --seed 7 >/dev/null
    touch "$data/.complete"
  fi
  echo "$data"
}

# The Python with the peers DuckDB and Polars (pinned, from PyPI) in $ASSAY_BENCH_VENV
# (default ~/.cache/assay-bench-venv), made once: prints its path.
peers_python() {
  local venv="${ASSAY_BENCH_VENV:-$HOME/.cache/assay-bench-venv}"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv" >&2
  "$venv/bin/python" -c "import duckdb, polars" 2>/dev/null ||
    "$venv/bin/pip" install --quiet "duckdb==2.0.0" "polars==2.1.0" >&2
  echo "$venv/bin/python"
}

# Runs a command with its stdout in ANSWER: prints its wall seconds and peak RSS (MiB),
# "SECONDS MIB", from /usr/bin/time (process start included, as a user would see).
timed() {
  local answer=$1
  shift
  /usr/bin/time -f "%e %M" -o "$work/time.txt" "$@" > "$answer"
  awk '{printf "%.3f %.0f\n", $1, $2 / 1024}' "$work/time.txt"
}
