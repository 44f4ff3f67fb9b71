"""Round-trip latency of one small query over each SQL protocol of a real `assay serve`.

Usage: python3 bench/sql_latency.py ASSAY_BINARY > section.md   (bench/sql-latency.sh wraps it)

The same query, `SELECT count(*) FROM styles WHERE list_price > ? AND category = ?` on the
bundled sample, answered N times one after another by one client per protocol, each on
one open connection:
- pgwire, simple query protocol (what psql sends; psycopg's ClientCursor, values inlined);
- pgwire, a prepared statement (psycopg, prepared on the server, values bound each time);
- Flight SQL, a prepared statement (ADBC, values bound each time);
- HTTP `POST /v1/sql` (keep-alive), values inlined.
Every answer is checked against the first protocol's. Prints the BENCHMARKS.md section
with p50 and p99 per protocol and each one's p50 against the simple query's. Not a test.
"""
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import adbc_driver_flightsql.dbapi as flight_sql
import psycopg
from adbc_driver_flightsql import DatabaseOptions

ASSAY = sys.argv[1]
N = int(os.environ.get("N", "500"))
SQL = "SELECT count(*) FROM styles WHERE list_price > {price} AND category = {category}"
VALUES = [(20.0 + (i % 5) * 10, ["dresses", "tops", "jeans"][i % 3]) for i in range(N)]


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def timed(run):
    answers, times = [], []
    for price, category in VALUES:
        start = time.perf_counter()
        answers.append(int(run(price, category)))
        times.append((time.perf_counter() - start) * 1000)
    return answers, times


def main():
    work = tempfile.mkdtemp()
    for item in ["events", "styles.parquet", "stock_receipts.parquet"]:
        source = os.path.join("data/sample", item)
        (shutil.copytree if os.path.isdir(source) else shutil.copy)(source, os.path.join(work, item))
    token = subprocess.run(
        [ASSAY, "token", "create", "--data", work, "--role", "analyst", "--name", "ana"],
        check=True, capture_output=True, text=True).stdout.strip()
    server = subprocess.Popen(
        [ASSAY, "serve", "--data", work, "--listen", "127.0.0.1:0", "--pg-listen", "127.0.0.1:0",
         "--flight-listen", "127.0.0.1:0", "--sql-max-concurrent-per-token", "8"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    addresses = {}
    try:
        for line in server.stdout:
            for name, prefix in [("pg", "assay pgwire listening on "),
                                 ("flight", "assay flight listening on "),
                                 ("http", "assay listening on ")]:
                if line.startswith(prefix):
                    addresses[name] = line[len(prefix):].strip()
            if "http" in addresses:
                break
        host, port = addresses["pg"].rsplit(":", 1)
        pg = dict(host=host, port=port, user="ana", password=token, dbname="assay", autocommit=True)
        results = {}

        with psycopg.connect(**pg, cursor_factory=psycopg.ClientCursor) as conn:
            results["pgwire, simple query (as psql)"] = timed(
                lambda p, c: conn.execute(SQL.format(price=p, category=f"'{c}'")).fetchone()[0])
        with psycopg.connect(**pg, prepare_threshold=0) as conn:
            results["pgwire, prepared statement (psycopg)"] = timed(
                lambda p, c: conn.execute(SQL.format(price="%s", category="%s"), (p, c)).fetchone()[0])
        options = {DatabaseOptions.AUTHORIZATION_HEADER.value: "Bearer " + token}
        with flight_sql.connect(addresses["flight"], db_kwargs=options) as conn, conn.cursor() as cur:
            def flight(p, c):
                cur.execute(SQL.format(price="?", category="?"), (p, c))
                return cur.fetchone()[0]
            results["Flight SQL, prepared statement (ADBC)"] = timed(flight)
        base = addresses["http"].removeprefix("http://")
        connection = http.client.HTTPConnection(base, timeout=60)

        def over_http(p, c):
            body = json.dumps({"sql": SQL.format(price=p, category=f"'{c}'")})
            connection.request("POST", "/v1/sql", body=body, headers={
                "Authorization": f"Bearer {token}", "Content-Type": "application/json",
                "Accept": "application/json"})
            answer = json.loads(connection.getresponse().read())
            return list(answer["rows"][0].values())[0]
        results["HTTP POST /v1/sql (keep-alive)"] = timed(over_http)
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(work, ignore_errors=True)

    first = next(iter(results.values()))[0]
    for name, (answers, _) in results.items():
        if answers != first:
            raise SystemExit(f"{name} answered differently from the simple query")
    simple_p50 = statistics.median(next(iter(results.values()))[1])
    build = os.environ.get("BUILD", "release build")
    lines = [
        "## SQL round trips",
        "",
        f"`bench/sql-latency.sh`, {time.strftime('%Y-%m-%d')}, {build}, the bundled sample, "
        f"{os.cpu_count()} cores: one small query "
        "(`SELECT count(*) FROM styles WHERE list_price > ? AND category = ?`) answered "
        f"{N} times in a row per protocol, on one open connection, other values each time; "
        "every protocol's answers equal.",
        "",
        "| protocol | p50 ms | p99 ms | p50 against the simple query |",
        "|---|---:|---:|---:|",
    ]
    for name, (_, times) in results.items():
        p50 = statistics.median(times)
        lines.append(f"| {name} | {p50:.2f} | {pct(times, 0.99):.2f} | {p50 / simple_p50:.2f}× |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
