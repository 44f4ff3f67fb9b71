"""Webhook delivery latency and outbox throughput of a real `assay serve` on loopback.

Usage: python3 bench/webhooks.py ASSAY_BINARY > section.md   (bench/webhooks.sh wraps it)

A receiver (stdlib http.server, in this process) subscribes to every event. Measured:
- latency from the acknowledgement of a change to its delivery: for overrides made one at
  a time, and for decision runs (POST /v1/runs) from the run's answer;
- outbox throughput: overrides acknowledged per second by 8 concurrent writers (each one
  an override file and an event file, both flushed before the answer), and how long the
  deliveries of all of them take to arrive.
Prints the BENCHMARKS.md section. Not a test: the numbers depend on the machine.
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ASSAY = sys.argv[1]
SEQUENTIAL = int(os.environ.get("SEQUENTIAL", "200"))
RUNS = int(os.environ.get("RUNS", "5"))
BURST = int(os.environ.get("BURST", "1000"))

arrivals = {}  # override_id or run_id -> arrival time (first)
arrived = threading.Condition()


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        now = time.monotonic()
        data = body["data"]
        key = data.get("override_id") if body["type"] == "override.created" else None
        if body["type"] == "run.completed":
            key = data["run_id"]
        with arrived:
            if key and key not in arrivals:
                arrivals[key] = now
            arrived.notify_all()
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def call(base, token, method, path, body=None):
    request = urllib.request.Request(
        base + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as r:
        return json.loads(r.read() or b"null")


def wait_for(keys, timeout=300):
    deadline = time.monotonic() + timeout
    with arrived:
        while not all(k in arrivals for k in keys):
            left = deadline - time.monotonic()
            if left <= 0:
                raise SystemExit(f"{sum(k not in arrivals for k in keys)} deliveries missing")
            arrived.wait(left)


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def main():
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    hook = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
    work = tempfile.mkdtemp()
    for item in ["events", "styles.parquet", "stock_receipts.parquet"]:
        source = os.path.join("data/sample", item)
        (shutil.copytree if os.path.isdir(source) else shutil.copy)(source, os.path.join(work, item))
    token = lambda role: subprocess.run(  # noqa: E731
        [ASSAY, "token", "create", "--data", work, "--role", role, "--name", role],
        check=True, capture_output=True, text=True).stdout.strip()
    admin, merch = token("admin"), token("merchandiser")
    server = subprocess.Popen([ASSAY, "serve", "--data", work, "--listen", "127.0.0.1:0"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        for line in server.stdout:
            if line.startswith("assay listening on "):
                base = line.split()[-1]
                break
        call(base, admin, "POST", "/v1/webhooks",
             {"url": hook, "events": ["run.completed", "decision.changed", "override.created"]})
        styles = [r["style_id"] for r in
                  call(base, merch, "GET", "/v1/decisions?market=ALL&limit=200")["items"]]

        def override(i):
            o = call(base, merch, "POST", f"/v1/styles/{styles[i % len(styles)]}/overrides",
                     {"verdict": "drop", "reason": "quality_issue"})
            return o["override_id"], time.monotonic()

        # One at a time: acknowledgement to delivery.
        latencies = []
        for i in range(SEQUENTIAL):
            oid, acked = override(i)
            wait_for([oid])
            latencies.append((arrivals[oid] - acked) * 1000)
        run_latencies = []
        for _ in range(RUNS):
            run = call(base, admin, "POST", "/v1/runs", {})
            acked = time.monotonic()
            wait_for([run["run_id"]])
            run_latencies.append((arrivals[run["run_id"]] - acked) * 1000)
        # A burst from 8 writers.
        started = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            done = list(pool.map(override, range(BURST)))
        acked_all = time.monotonic()
        wait_for([oid for oid, _ in done])
        delivered_all = time.monotonic()
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(work, ignore_errors=True)
    burst_secs = acked_all - started
    print(f"""## Webhooks

`bench/webhooks.sh`, {time.strftime('%Y-%m-%d', time.gmtime())}, {os.path.basename(os.path.dirname(ASSAY))} build, the bundled sample, {os.cpu_count()} cores; a Python
receiver on loopback answers 200. Latency is from the API's answer to the change (an
override, or `POST /v1/runs`) to the receiver's arrival of its event.

| what | n | p50 | p99 | max |
|---|---:|---:|---:|---:|
| `override.created`, one at a time | {len(latencies)} | {statistics.median(latencies):.1f} ms | {pct(latencies, 0.99):.1f} ms | {max(latencies):.1f} ms |
| `run.completed` after `POST /v1/runs` | {len(run_latencies)} | {statistics.median(run_latencies):.1f} ms | {pct(run_latencies, 0.99):.1f} ms | {max(run_latencies):.1f} ms |

Outbox throughput: {BURST} overrides from 8 concurrent writers acknowledged in
{burst_secs:.2f} s (**{BURST / burst_secs:.0f} overrides/s**, each an override file and an event
file flushed before the answer); all {BURST} delivered {delivered_all - started:.2f} s after the
first was sent ({BURST / (delivered_all - started):.0f} deliveries/s, one subscriber).
""")


if __name__ == "__main__":
    main()
