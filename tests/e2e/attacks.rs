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
