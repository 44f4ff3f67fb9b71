//! The sandbox's escape list: each way out of read-only SQL that the analyst tests know,
//! run over every client analysts use — HTTP, psql, psycopg, pgjdbc, node-postgres, and
//! ADBC over Flight SQL — in each client's plain and prepared forms. Every one is
//! refused with its kind's code in that protocol (the one table of
//! `assay_api::error_codes`); nothing is written, the shared session's settings are
//! untouched, and the server goes on serving each client.

use std::path::Path;

use assay_api::error_codes::codes;
use assay_engine::ErrorKind;
use serde_json::Value;

use crate::clients::{jdbc_probe, node_probe};
use crate::pg::{http_rows, psql};
use crate::server::{Server, sample_copy, token};
use crate::sql::{sql, still_serving};
use crate::support::{path_str, run_python};

/// One way out, and the kind of error it must meet.
struct Escape {
    sql: String,
    kind: ErrorKind,
}

/// Writes, reads outside the data, DDL, session settings — alone and inside `EXPLAIN
/// ANALYZE`. `victim` is a file no statement may create.
fn escapes(victim: &Path) -> Vec<Escape> {
    let victim = victim.display();
    let refused = |sql: String| Escape {
        sql,
        kind: ErrorKind::PermissionDenied,
    };
    let mut list: Vec<Escape> = [
        format!("COPY (SELECT 1) TO '{victim}'"),
        format!("COPY styles TO '{victim}' STORED AS CSV"),
        "CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/passwd'".into(),
        "INSERT INTO styles SELECT * FROM styles".into(),
        "INSERT INTO overrides SELECT * FROM overrides".into(),
        "DELETE FROM overrides".into(),
        "UPDATE styles SET list_price = 0".into(),
        "DROP TABLE events".into(),
        "CREATE TABLE t AS SELECT 1".into(),
        "CREATE VIEW v AS SELECT 1".into(),
        "SET datafusion.runtime.memory_limit = '1G'".into(),
        "SET datafusion.execution.batch_size = 1".into(),
        "EXPLAIN ANALYZE INSERT INTO styles SELECT * FROM styles".into(),
        format!("EXPLAIN ANALYZE COPY (SELECT 1) TO '{victim}'"),
    ]
    .into_iter()
    .map(refused)
    .collect();
    // A path is not a table: files outside the catalog cannot be read by name.
    for path in ["/etc/passwd", "/etc/hostname"] {
        list.push(Escape {
            sql: format!("SELECT * FROM '{path}'"),
            kind: ErrorKind::UnknownTable,
        });
    }
    list
}

/// psql's SQLSTATE for `statement` over the simple query protocol ("ran" if none):
/// the code its verbose error names (`ERROR:  42501: …`).
fn psql_state(pg: &str, password: &str, statement: &str) -> String {
    let (ok, _, err) = psql(pg, "ana", password, statement);
    if ok {
        return "ran".into();
    }
    err.split("ERROR:  ")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .map_or_else(|| err.clone(), str::to_owned)
}

const PYTHON_CLIENTS: &str = r#"
import json, os, psycopg
import adbc_driver_flightsql.dbapi as flight_sql
from adbc_driver_flightsql import DatabaseOptions
statements = [l for l in open(os.environ["ESCAPES"]).read().split("\n") if l]
out = {"psycopg": {"extended": [], "prepared": []}, "adbc": {"statement": [], "prepared": []}}
with psycopg.connect(host=os.environ["PGHOST"], port=os.environ["PGPORT"], user="ana",
                     password=os.environ["TOKEN"], dbname="assay", autocommit=True) as conn:
    for sql in statements:
        for form, prepare in (("extended", False), ("prepared", True)):
            try:
                conn.execute(sql, prepare=prepare)
                out["psycopg"][form].append("ran")
            except psycopg.Error as e:
                out["psycopg"][form].append(e.sqlstate or str(e))
    out["psycopg"]["after"] = conn.execute("SELECT count(*) FROM styles").fetchone()[0]
with flight_sql.connect(os.environ["FLIGHT"], db_kwargs={
        DatabaseOptions.AUTHORIZATION_HEADER.value: "Bearer " + os.environ["TOKEN"]}) as conn:
    for sql in statements:
        for form in ("statement", "prepared"):
            try:
                with conn.cursor() as cur:
                    if form == "prepared":
                        cur.adbc_prepare(sql)
                    cur.execute(sql)
                    cur.fetchall()
                out["adbc"][form].append("ran")
            except Exception as e:
                out["adbc"][form].append(str(e))
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) AS n FROM styles")
        out["adbc"]["after"] = cur.fetchone()[0]
print(json.dumps(out))
"#;

#[tokio::test]
async fn every_client_is_refused_every_escape_in_its_own_protocols_code() {
    let tmp = sample_copy();
    let data = tmp.path();
    let analyst = token(data, "analyst", "ana");
    let server = Server::start_with(
        data,
        &[
            "--pg-listen",
            "127.0.0.1:0",
            "--flight-listen",
            "127.0.0.1:0",
        ],
    );
    let (pg, flight) = (server.pg.clone().unwrap(), server.flight.clone().unwrap());
    let victim = data.join("written-by-an-escape.csv");
    let list = escapes(&victim);
    let file = data.join("escapes.sql");
    let lines: String = list.iter().map(|e| format!("{}\n", e.sql)).collect();
    std::fs::write(&file, lines).unwrap();
    let client = reqwest::Client::new();
    let settings = "SELECT name, value FROM information_schema.df_settings ORDER BY name";
    let settings_before = http_rows(&server.base, &analyst, settings).await;

    // What each client met, per statement, in its own terms.
    let mut met: Vec<(String, Vec<String>)> = Vec::new();
    let mut http = Vec::new();
    for e in &list {
        let r = sql(&client, &server.base, &analyst, &e.sql, "application/json").await;
        http.push(r.status().as_u16().to_string());
    }
    met.push(("http".into(), http));
    met.push((
        "psql".into(),
        list.iter()
            .map(|e| psql_state(&pg, &analyst, &e.sql))
            .collect(),
    ));
    let escapes_env = [("ESCAPES", path_str(&file))];
    let texts = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap_or_else(|| panic!("{v}"))
            .iter()
            .map(|s| s.as_str().unwrap().to_owned())
            .collect()
    };
    // The probes read the list from the file ESCAPES names.
    let jdbc = jdbc_probe(&pg, "ana", &analyst, &["escapes"], &escapes_env);
    let node = node_probe(&pg, "ana", &analyst, &["escapes"], &escapes_env);
    let (host, port) = pg.rsplit_once(':').unwrap();
    let python: Value = serde_json::from_str(&run_python(
        PYTHON_CLIENTS,
        &[
            escapes_env[0],
            ("PGHOST", host),
            ("PGPORT", port),
            ("TOKEN", &analyst),
            ("FLIGHT", &flight),
        ],
    ))
    .unwrap();
    for (name, v, forms) in [
        ("pgjdbc", &jdbc, ["simple", "prepared"]),
        ("node-postgres", &node, ["simple", "prepared"]),
        ("psycopg", &python["psycopg"], ["extended", "prepared"]),
        ("adbc", &python["adbc"], ["statement", "prepared"]),
    ] {
        assert_eq!(
            v["after"].to_string().trim_matches('"'),
            "200",
            "{name}: {v}"
        );
        for form in forms {
            met.push((format!("{name} {form}"), texts(&v[form])));
        }
    }

    let mut wrong = Vec::new();
    for (client_form, answers) in &met {
        assert_eq!(answers.len(), list.len(), "{client_form}: {answers:?}");
        for (e, answer) in list.iter().zip(answers) {
            let c = codes(e.kind);
            let right = match client_form.as_str() {
                "http" => *answer == c.http.as_u16().to_string(),
                f if f.starts_with("adbc") => answer.contains(&format!("{:?}", c.grpc)),
                _ => answer == c.sqlstate,
            };
            if !right {
                wrong.push(format!("{client_form}: {} → {answer}", e.sql));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "refused otherwise than the error table says:\n{}",
        wrong.join("\n")
    );
    assert!(!victim.exists(), "an escape wrote {}", victim.display());
    assert_eq!(
        http_rows(&server.base, &analyst, settings).await,
        settings_before,
        "the shared session's settings are untouched"
    );
    still_serving(&client, &server.base).await;
    server.stop();
}
