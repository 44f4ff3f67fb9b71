#!/usr/bin/env bash
# Load benchmark of `assay serve` (release build) on loopback with wrk: requests/s and
# latency percentiles for one style's page and for a 100-row page of decisions.
# Writes the results to BENCHMARKS.md (section "HTTP API"). Not a test: numbers depend
# on the machine; run it on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/assay-target}"
DURATION="${DURATION:-15s}"
CONNECTIONS="${CONNECTIONS:-64}"

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
cargo build --release -p assay-api
ASSAY="$CARGO_TARGET_DIR/release/assay"

work=$(mktemp -d)
server=""
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
cp -r data/sample/events data/sample/styles.parquet data/sample/stock_receipts.parquet "$work/"
token=$("$ASSAY" token create --data "$work" --role buyer --name bench 2>/dev/null)
"$ASSAY" serve --data "$work" --listen 127.0.0.1:0 >"$work/serve.out" 2>"$work/serve.err" &
server=$!
for _ in $(seq 1 600); do
  grep -q "assay listening on" "$work/serve.out" 2>/dev/null && break
  sleep 0.2
done
base=$(sed -n 's/^assay listening on //p' "$work/serve.out")
style=$(curl -s -H "Authorization: Bearer $token" "$base/v1/decisions?market=ALL&limit=1&sort=-units_sold" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["items"][0]["style_id"])')

# Prints: requests/s, p50 ms, p99 ms, non-2xx responses, socket errors.
measure() {
  local url=$1
  wrk -t2 -c4 -d3s -H "Authorization: Bearer $token" "$url" >/dev/null # warm-up
  wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency -H "Authorization: Bearer $token" "$url" >"$work/wrk.txt"
  python3 - "$work/wrk.txt" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
def ms(label):
    m = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    value, unit = float(m.group(1)), m.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
print(f"{rps:.0f} {ms(50):.2f} {ms(99):.2f} {int(non2xx.group(1)) if non2xx else 0} {sum(map(int, errors.groups())) if errors else 0}")
PY
}

read -r s_rps s_p50 s_p99 s_bad s_err < <(measure "$base/v1/styles/$style")
read -r d_rps d_p50 d_p99 d_bad d_err < <(measure "$base/v1/decisions?limit=100&market=ALL")

section=$(cat <<MD
## HTTP API

\`bench/http-load.sh\`, $(date -u +%Y-%m-%d), release build, the bundled sample (200 styles,
505 decision rows), wrk with 2 threads and $CONNECTIONS connections for $DURATION on loopback; wrk and
the server share the machine's $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)).

| request | requests/s | p50 | p99 | non-2xx | socket errors |
|---|---:|---:|---:|---:|---:|
| \`GET /v1/styles/$style\` | $s_rps | $s_p50 ms | $s_p99 ms | $s_bad | $s_err |
| \`GET /v1/decisions?limit=100&market=ALL\` | $d_rps | $d_p50 ms | $d_p99 ms | $d_bad | $d_err |

Target for the single-style read: ≥ 20,000 requests/s with p99 < 5 ms at 64 connections, no errors.
MD
)
echo "$section" | python3 bench/write-section.py "HTTP API"
echo "$section"
