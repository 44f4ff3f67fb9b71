//! Queries from the attack run that once took the whole server down, sent over every
//! protocol to a real server: each is refused, and the server keeps answering others.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::server::{Server, sample_copy, token};
use crate::sql::sql;
use crate::support::run_python;

/// `a0` is one row; each `aN` is `a(N-1)` twice: the planner would build 2^steps nodes.
fn doubling_cte(steps: usize) -> String {
    let mut text = String::from("WITH a0 AS (SELECT 1 AS x)");
    for i in 1..=steps {
        let p = i - 1;
        text += &format!(", a{i} AS (SELECT x FROM a{p} UNION ALL SELECT x FROM a{p})");
    }
    text + &format!(" SELECT count(*) AS n FROM a{steps}")
}

const CLIENTS: &str = r#"
import json, os, psycopg
import adbc_driver_flightsql.dbapi as flight_sql
from adbc_driver_flightsql import DatabaseOptions

out = {}
conn = psycopg.connect(host=os.environ["PGHOST"], port=os.environ["PGPORT"],
                       user="ana", password=os.environ["TOKEN"], dbname="assay",
                       connect_timeout=20)
with conn.cursor() as cur:
    for name, (text, params) in {"simple": (os.environ["QUERY"], None),
                                 # A parameter makes psycopg Parse, Bind, Execute.
                                 "extended": (os.environ["QUERY"] + " WHERE n > %s", (0,))}.items():
        try:
            cur.execute(text, params)
            out["pg_" + name] = "ran"
        except psycopg.Error as e:
            out["pg_" + name] = [e.sqlstate, str(e)]
            conn.rollback()
    cur.execute("SELECT count(*) FROM styles")
    out["pg_after"] = cur.fetchone()[0]
with flight_sql.connect(os.environ["FLIGHT"], db_kwargs={
        DatabaseOptions.AUTHORIZATION_HEADER.value: "Bearer " + os.environ["TOKEN"]}) as f, \
        f.cursor() as cur:
    try:
        cur.execute(os.environ["QUERY"])
        cur.fetchall()
        out["flight"] = "ran"
    except Exception as e:
        out["flight"] = str(e)
    cur.execute("SELECT count(*) FROM styles")
    out["flight_after"] = cur.fetchone()[0]
print(json.dumps(out))
"#;

/// /healthz and another user's query, answered within 2 s.
async fn answers_others_at_once(client: &reqwest::Client, server: &Server, token: &str) {
    let start = Instant::now();
    let health = client
        .get(format!("{}/healthz", server.base))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .expect("/healthz answers within 2 s");
    assert_eq!(health.status(), 200);
    let r = sql(
        client,
        &server.base,
        token,
        "SELECT count(*) AS n FROM styles",
        "application/json",
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}

/// A 422 of problem `kind` whose detail says `detail`.
async fn refused(r: reqwest::Response, kind: &str, detail: &str) {
    assert_eq!(r.status(), 422);
    let problem: Value = r.json().await.unwrap();
    assert_eq!(
        problem["type"],
        format!("tag:assay,2026:problem:{kind}"),
        "{problem}"
    );
    assert!(
        problem["detail"].as_str().unwrap().contains(detail),
        "{problem}"
    );
}

#[tokio::test]
async fn a_doubling_cte_is_refused_before_planning_over_every_protocol() {
    let tmp = sample_copy();
    let data = tmp.path();
    let analyst = token(data, "analyst", "ana");
    let other = token(data, "analyst", "other");
    let server = Server::start_limited(
        data,
        &[
            "--pg-listen",
            "127.0.0.1:0",
            "--flight-listen",
            "127.0.0.1:0",
        ],
        ADDRESS_SPACE_KIB,
    );
    let client = reqwest::Client::new();
    let bomb = doubling_cte(40);

    let r = sql(&client, &server.base, &analyst, &bomb, "application/json").await;
    refused(r, "too-complex", "1099511627776 table references").await;
    answers_others_at_once(&client, &server, &other).await;

    // Below the bound the same shape still runs: the refusal is about size, not form.
    let r = sql(
        &client,
        &server.base,
        &analyst,
        &doubling_cte(8),
        "application/json",
    )
    .await;
    let small: Value = r.json().await.unwrap();
    assert_eq!(small["rows"][0]["n"], 256, "{small}");

    let pg = server.pg.clone().expect("the pgwire address is reported");
    let (host, port) = pg.rsplit_once(':').unwrap();
    let flight = server
        .flight
        .clone()
        .expect("the Flight SQL address is reported");
    let out = run_python(
        CLIENTS,
        &[
            ("PGHOST", host),
            ("PGPORT", port),
            ("FLIGHT", &flight),
            ("TOKEN", &analyst),
            ("QUERY", &bomb),
        ],
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["pg_simple"][0], "54001", "{v}");
    assert_eq!(v["pg_extended"][0], "54001", "{v}");
    // ADBC names the gRPC code in its own words: `(ResourceExhausted; ExecuteQuery)`.
    assert!(
        v["flight"].as_str().unwrap().contains("ResourceExhausted"),
        "{v}"
    );
    assert!(
        v["flight"].as_str().unwrap().contains("table references"),
        "{v}"
    );
    assert_eq!(v["pg_after"], v["flight_after"]);
    assert!(v["pg_after"].as_i64().unwrap() > 0);
    answers_others_at_once(&client, &server, &other).await;
    server.stop();
}

/// What the server may reserve under `ulimit -v` in these tests: it starts at ~2.7 GB of
/// address space (thread stacks and allocator arenas), so 6 GiB leaves room for its
/// limits and none for a 3 GB answer.
const ADDRESS_SPACE_KIB: u64 = 6 * 1024 * 1024;

#[tokio::test]
async fn functions_that_build_huge_answers_are_refused_under_a_memory_limit() {
    let tmp = sample_copy();
    let data = tmp.path();
    let analyst = token(data, "analyst", "ana");
    let other = token(data, "analyst", "other");
    let server = Server::start_limited(data, &[], ADDRESS_SPACE_KIB);
    let client = reqwest::Client::new();
    for huge in [
        "SELECT length(repeat(arrow_cast('x', 'LargeUtf8'), 3000000000)) AS n",
        "SELECT cardinality(range(0, 250000000)) AS n",
        "SELECT length(lpad(name, 2000000000)) AS n FROM styles",
        "SELECT cardinality(array_repeat(style_id, 200000000)) AS n FROM styles",
    ] {
        let r = sql(&client, &server.base, &analyst, huge, "application/json").await;
        refused(r, "memory-limit", "in one call").await;
        answers_others_at_once(&client, &server, &other).await;
    }
    // Small answers from the same functions still come.
    let r = sql(
        &client,
        &server.base,
        &analyst,
        "SELECT length(repeat('ab', 1000)) AS n, cardinality(range(0, 1000)) AS m",
        "application/json",
    )
    .await;
    let small: Value = r.json().await.unwrap();
    assert_eq!(small["rows"][0]["n"], 2000, "{small}");
    assert_eq!(small["rows"][0]["m"], 1000, "{small}");
    server.stop();
}

/// psycopg logged in as `ana`, for the scripts below.
const PSYCOPG: &str = r#"
import json, os, time, psycopg

def connect():
    return psycopg.connect(host=os.environ["PGHOST"], port=os.environ["PGPORT"],
                           user="ana", password=os.environ["TOKEN"], dbname="assay",
                           connect_timeout=20)
"#;

const OVERSIZE: &str = r#"
def attempt(conn, text, params=None):
    try:
        with conn.cursor() as cur:
            cur.execute(text, params)
            return ["ran", cur.fetchall()]
    except psycopg.Error as e:
        return [e.sqlstate, str(e)]

out = {}
comment = "SELECT 1 AS one --" + "x" * 70000
with connect() as conn:
    out["simple"] = attempt(conn, comment)
    conn.rollback()
    # A parameter makes psycopg Parse, Bind, Execute.
    out["extended"] = attempt(conn, "SELECT %s::int AS one --" + "x" * 70000, (1,))
    conn.rollback()
    out["two_in_one_parse"] = attempt(conn, "SELECT %s::int AS one; SELECT 2", (1,))
    conn.rollback()
    out["same_connection_after"] = attempt(conn, "SELECT count(*) FROM styles")
# 10 MB: refused at the message's header, and the connection ends.
started = time.monotonic()
conn = connect()
in_list = "SELECT count(*) FROM styles WHERE style_id IN (" + ",".join(["'x'"] * 2500000) + ")"
out["ten_mb"] = attempt(conn, in_list)
out["ten_mb_closed"] = conn.closed
conn.close()
out["ten_mb_secs"] = time.monotonic() - started
with connect() as conn:
    out["new_connection_after"] = attempt(conn, "SELECT count(*) FROM styles")
print(json.dumps(out))
"#;

#[tokio::test]
async fn sql_over_the_limit_is_refused_before_pgwire_parses_it() {
    let tmp = sample_copy();
    let data = tmp.path();
    let analyst = token(data, "analyst", "ana");
    let other = token(data, "analyst", "other");
    let server = Server::start_limited(data, &["--pg-listen", "127.0.0.1:0"], ADDRESS_SPACE_KIB);
    let pg = server.pg.clone().expect("the pgwire address is reported");
    let (host, port) = pg.rsplit_once(':').unwrap();
    let out = run_python(
        &format!("{PSYCOPG}{OVERSIZE}"),
        &[("PGHOST", host), ("PGPORT", port), ("TOKEN", &analyst)],
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    println!("pgwire over the limits: {v}");
    for protocol in ["simple", "extended"] {
        assert_eq!(v[protocol][0], "54000", "{protocol}: {v}");
        assert!(
            v[protocol][1].as_str().unwrap().contains("at most 65536"),
            "{v}"
        );
    }
    assert_eq!(v["two_in_one_parse"][0], "42601", "{v}");
    assert!(
        v["two_in_one_parse"][1]
            .as_str()
            .unwrap()
            .contains("one statement"),
        "{v}"
    );
    let styles = &v["same_connection_after"];
    assert_eq!(styles[0], "ran", "{v}");
    assert_eq!(v["ten_mb"][0], "54000", "{v}");
    assert!(
        v["ten_mb"][1]
            .as_str()
            .unwrap()
            .contains("protocol message"),
        "{v}"
    );
    assert_eq!(v["ten_mb_closed"], true, "{v}");
    // Refused at its header: nothing of the 10 MB was parsed (that took 22 s).
    assert!(v["ten_mb_secs"].as_f64().unwrap() < 5.0, "{v}");
    assert_eq!(&v["new_connection_after"], styles, "{v}");
    answers_others_at_once(&reqwest::Client::new(), &server, &other).await;
    server.stop();
}

const CONNECTION_CAP: &str = r#"
out = {}
held = [connect() for _ in range(3)]
try:
    connect()
    out["fourth"] = "connected"
except psycopg.OperationalError as e:
    out["fourth"] = str(e)
held.pop().close()
# The server frees the place once it has read the Terminate: moments later.
for attempt in range(40):
    try:
        conn = connect()
        break
    except psycopg.OperationalError:
        time.sleep(0.05)
with conn, conn.cursor() as cur:
    cur.execute("SELECT 1")
    out["after_one_closed"] = cur.fetchone()[0]
print(json.dumps(out))
"#;

/// Connections that send half a request and nothing more, as a slow-header attack.
fn stalled_http_connections(base: &str, n: usize) -> Vec<std::net::TcpStream> {
    use std::io::Write;
    let addr = base.trim_start_matches("http://");
    (0..n)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
            s
        })
        .collect()
}

#[tokio::test]
async fn each_protocol_holds_a_bounded_number_of_connections_and_slow_headers_are_cut() {
    let tmp = sample_copy();
    let data = tmp.path();
    let analyst = token(data, "analyst", "ana");
    let server = Server::start_with(
        data,
        &[
            "--pg-listen",
            "127.0.0.1:0",
            "--max-connections",
            "3",
            "--header-timeout-secs",
            "5",
        ],
    );
    // A fresh connection per request: a pooled one would hold a place itself.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let healthz = format!("{}/healthz", server.base);

    let stalled = stalled_http_connections(&server.base, 3);
    // The server takes the three stalled connections in its own time (slower on a busy
    // CI machine): ask until they hold every place, within the header deadline. The
    // full house's 503 is written as soon as the connection is accepted, so it can
    // reach the client before its request is sent (hyper: "unexpected message"): that
    // answer is asked for again.
    let asked = Instant::now();
    let r = loop {
        match client.get(&healthz).send().await {
            Ok(r) if r.status() == 503 => break r,
            outcome => {
                let at = asked.elapsed();
                assert!(at < Duration::from_secs(4), "never full: {outcome:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert_eq!(r.headers()["retry-after"], "1");
    // The header-read deadline (5 s here) closes them, and their places are free again.
    let started = Instant::now();
    for mut s in stalled {
        use std::io::Read;
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
    }
    let cut_after = started.elapsed();
    assert!(cut_after < Duration::from_secs(10), "{cut_after:?}");
    assert_eq!(client.get(&healthz).send().await.unwrap().status(), 200);

    let pg = server.pg.clone().expect("the pgwire address is reported");
    let (host, port) = pg.rsplit_once(':').unwrap();
    let out = run_python(
        &format!("{PSYCOPG}{CONNECTION_CAP}"),
        &[("PGHOST", host), ("PGPORT", port), ("TOKEN", &analyst)],
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    assert!(
        v["fourth"].as_str().unwrap().contains("too many clients"),
        "{v}"
    );
    assert_eq!(v["after_one_closed"], 1, "{v}");
    server.stop();
}

#[tokio::test]
async fn one_token_cannot_take_every_query_slot() {
    let tmp = sample_copy();
    let data = tmp.path();
    let analyst = token(data, "analyst", "ana");
    let other = token(data, "analyst", "other");
    let server = Server::start_with(data, &["--sql-timeout-secs", "8"]);
    let client = reqwest::Client::new();
    // Long enough to be running when the next query comes; stopped by the time limit.
    let long = "SELECT count(*) AS n FROM range(0, 1000000000000)";
    let running: Vec<_> = (0..2)
        .map(|_| {
            let (client, base, token) = (client.clone(), server.base.clone(), analyst.clone());
            tokio::spawn(async move { sql(&client, &base, &token, long, "application/json").await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let r = sql(
        &client,
        &server.base,
        &analyst,
        "SELECT 1 AS one",
        "application/json",
    )
    .await;
    assert_eq!(r.status(), 429);
    let problem: Value = r.json().await.unwrap();
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("this token already runs 2 queries"),
        "{problem}"
    );
    // Another analyst still has room.
    let r = sql(
        &client,
        &server.base,
        &other,
        "SELECT 1 AS one",
        "application/json",
    )
    .await;
    assert_eq!(r.status(), 200);
    for query in running {
        let r = query.await.unwrap();
        assert_eq!(r.status(), 422, "the long queries end at their time limit");
    }
    let r = sql(
        &client,
        &server.base,
        &analyst,
        "SELECT 1 AS one",
        "application/json",
    )
    .await;
    assert_eq!(r.status(), 200);
    server.stop();
}
