//! Analysts' SQL over the PostgreSQL wire protocol, with the real psql and psycopg
//! against the real server: logins, the same rows as HTTP, `\d`, refusals and limits.

use std::process::Command;

use serde_json::Value;

use crate::clients::{jdbc_probe, node_probe};
use crate::server::{Server, sample_copy, token};
use crate::sql::{sql, still_serving};
use crate::support::{path_str, run_python};

/// psql's result: (success, stdout, stderr). Unaligned, tuples only, verbose errors so
/// the SQLSTATE is printed.
pub(crate) fn psql(pg: &str, user: &str, password: &str, command: &str) -> (bool, String, String) {
    psql_with(pg, user, password, "", command)
}

/// [`psql`] with more connection settings (`sslmode=…`), in libpq's `key=value` form.
fn psql_with(
    pg: &str,
    user: &str,
    password: &str,
    settings: &str,
    command: &str,
) -> (bool, String, String) {
    let (host, port) = pg.rsplit_once(':').unwrap();
    let conninfo = format!("host={host} port={port} user={user} dbname=assay {settings}");
    let out = Command::new("psql")
        .args([
            "-X",
            "-At",
            "-v",
            "VERBOSITY=verbose",
            "-d",
            &conninfo,
            "-c",
            command,
        ])
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "20")
        .output()
        .expect("psql runs (Debian package postgresql-client, installed by scripts/deps)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn psql_ok(pg: &str, user: &str, password: &str, command: &str) -> String {
    let (ok, out, err) = psql(pg, user, password, command);
    assert!(ok, "psql -c {command:?} failed: {err}");
    out
}

/// The HTTP answer as psql's unaligned text: `a|b` per row.
pub(crate) async fn http_rows(base: &str, token: &str, text: &str) -> String {
    let client = reqwest::Client::new();
    let r = sql(&client, base, token, text, "application/json").await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let names: Vec<String> = v["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect();
    v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            let cells: Vec<String> = names
                .iter()
                .map(|n| match &row[n] {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                })
                .collect();
            cells.join("|") + "\n"
        })
        .collect()
}

/// Over HTTP, what the clients ask with a bound parameter (`list_price >= 40.0`).
const DEAR: &str =
    "SELECT style_id, list_price FROM styles WHERE list_price >= 40.0 ORDER BY style_id";

/// Over HTTP, the counts the clients' reused prepared statements ask for (dresses above
/// 20 and above 40), which must differ for the test to see the values bound.
async fn dresses_above_20_and_40(base: &str, token: &str) -> (String, String) {
    let count = |price: &str| {
        format!("SELECT count(*) FROM styles WHERE list_price > {price} AND category = 'dresses'")
    };
    let above_20 = http_rows(base, token, &count("20.0")).await;
    let above_40 = http_rows(base, token, &count("40.0")).await;
    assert_ne!(above_20, above_40);
    (above_20.trim().to_owned(), above_40.trim().to_owned())
}

const PSYCOPG: &str = r#"
import json, os, psycopg
conn = psycopg.connect(host=os.environ["PGHOST"], port=os.environ["PGPORT"],
                       user=os.environ["PGUSER"], password=os.environ["PGPASSWORD"],
                       dbname="assay", connect_timeout=20)
out = {}
with conn.cursor() as cur:
    cur.execute("SELECT style_id, verdict FROM decisions WHERE market = %s AND verdict = %s ORDER BY style_id",
                ("ALL", "keep"))
    out["keeps"] = [list(r) for r in cur.fetchall()]
    out["columns"] = [d.name for d in cur.description]
    refused = {}
    for stmt in ["COPY (SELECT 1) TO '/tmp/assay-pg-copy.csv'",
                 "INSERT INTO overrides SELECT * FROM overrides",
                 "SET datafusion.execution.batch_size = 1",
                 "DROP TABLE styles"]:
        try:
            cur.execute(stmt)
            refused[stmt] = "ran"
        except psycopg.Error as e:
            refused[stmt] = e.sqlstate
            conn.rollback()
    out["refused"] = refused
    cur.execute("SELECT count(*) FROM styles")
    out["after"] = cur.fetchone()[0]
print(json.dumps(out))
"#;

#[tokio::test]
async fn psql_and_psycopg_log_in_with_tokens_and_see_what_http_sees() {
    let tmp = sample_copy();
    let data = tmp.path();
    let analyst = token(data, "analyst", "ana");
    let viewer = token(data, "viewer", "vic");
    let server = Server::start_with(data, &["--pg-listen", "127.0.0.1:0"]);
    let pg = server.pg.clone().expect("the pgwire address is reported");

    // The same query, the same rows, over both protocols.
    let query = "SELECT category, count(*) AS styles, round(avg(list_price), 2) AS avg_price FROM styles GROUP BY category ORDER BY category";
    let over_pg = psql_ok(&pg, "ana", &analyst, query);
    assert_eq!(over_pg.lines().count(), 8, "{over_pg}");
    assert_eq!(over_pg, http_rows(&server.base, &analyst, query).await);

    // psql's \d lists every table and view analysts rely on.
    let listing = psql_ok(&pg, "ana", &analyst, "\\d");
    for table in [
        "events",
        "styles",
        "stock_receipts",
        "style_funnel",
        "style_daily",
        "decisions",
        "overrides",
    ] {
        assert!(
            listing.lines().any(|l| l.split('|').nth(1) == Some(table)),
            "\\d lists {table}:\n{listing}"
        );
    }
    let columns = psql_ok(&pg, "ana", &analyst, "\\d styles");
    assert!(
        columns.contains("style_id") && columns.contains("category"),
        "{columns}"
    );

    // Logins: a wrong password, a role without SQL and an unknown name all fail alike.
    for (user, password) in [
        ("ana", "assay_wrong"),
        ("vic", viewer.as_str()),
        ("nobody", analyst.as_str()),
    ] {
        let (ok, _, err) = psql(&pg, user, password, "SELECT 1");
        assert!(!ok, "{user} must not log in");
        assert!(
            err.contains(&format!(
                "assword authentication failed for user \"{user}\""
            )),
            "{err}"
        );
    }

    // psycopg with parameters (the extended protocol), and its refusals.
    let (host, port) = pg.rsplit_once(':').unwrap();
    let out = run_python(
        PSYCOPG,
        &[
            ("PGHOST", host),
            ("PGPORT", port),
            ("PGUSER", "ana"),
            ("PGPASSWORD", &analyst),
        ],
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    let keeps = http_rows(
        &server.base,
        &analyst,
        "SELECT style_id, verdict FROM decisions WHERE market = 'ALL' AND verdict = 'keep' ORDER BY style_id",
    )
    .await;
    let from_psycopg: String = v["keeps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| format!("{}|{}\n", r[0].as_str().unwrap(), r[1].as_str().unwrap()))
        .collect();
    assert!(!keeps.is_empty());
    assert_eq!(from_psycopg, keeps);
    assert_eq!(v["columns"], serde_json::json!(["style_id", "verdict"]));
    for (stmt, state) in v["refused"].as_object().unwrap() {
        assert_eq!(state, "42501", "{stmt} is refused with 42501");
    }
    assert_eq!(v["after"], 200);
    assert!(!std::path::Path::new("/tmp/assay-pg-copy.csv").exists());
    server.stop();
}

const SQLALCHEMY: &str = r#"
import json, os, psycopg, pandas as pd, sqlalchemy as sa
url = sa.engine.URL.create("postgresql+psycopg", username=os.environ["PGUSER"],
                           password=os.environ["PGPASSWORD"], host=os.environ["PGHOST"],
                           port=int(os.environ["PGPORT"]), database="assay")
engine = sa.create_engine(url)
out = {}
with engine.connect() as conn:
    out["server_version_info"] = list(conn.dialect.server_version_info)
    out["version"] = conn.execute(sa.text("SELECT version()")).scalar()
    out["version_num"] = conn.execute(sa.text("SHOW server_version_num")).scalar()
    frame = pd.read_sql(sa.text("SELECT style_id, list_price FROM styles WHERE list_price >= :p ORDER BY style_id"),
                        conn, params={"p": 40.0})
    out["dear"] = [[r.style_id, float(r.list_price)] for r in frame.itertuples()]
# Polars reads through the same engine, with bound parameters.
import polars as pl
out["polars"] = [list(r) for r in pl.read_database(
    sa.text("SELECT style_id, list_price FROM styles WHERE list_price >= :p ORDER BY style_id"),
    engine, execute_options={"parameters": {"p": 40.0}}).rows()]
inspector = sa.inspect(engine)
out["schemas"] = inspector.get_schema_names()
out["tables"] = sorted(inspector.get_table_names())
out["views"] = sorted(inspector.get_view_names())
# What Superset and a schema browser read of every relation.
out["columns"] = {t: [[c["name"], str(c["type"])] for c in inspector.get_columns(t)]
                  for t in out["tables"] + out["views"]}
out["styles_keys"] = [inspector.get_pk_constraint("styles")["constrained_columns"],
                      inspector.get_indexes("styles"), inspector.get_unique_constraints("styles"),
                      inspector.get_foreign_keys("styles")]
styles = sa.Table("styles", sa.MetaData(), autoload_with=engine)
with engine.connect() as conn:
    out["reflected"] = [[r.style_id, float(r.list_price)] for r in conn.execute(
        sa.select(styles.c.style_id, styles.c.list_price)
        .where(styles.c.list_price >= 40.0).order_by(styles.c.style_id))]
    # A server-side cursor: rows come in parts as they are fetched.
    streamed = conn.execution_options(stream_results=True, max_row_buffer=7).execute(
        sa.text("SELECT style_id FROM styles ORDER BY style_id"))
    out["streamed"] = [len(part) for part in streamed.partitions(50)]
with psycopg.connect(host=os.environ["PGHOST"], port=os.environ["PGPORT"], user=os.environ["PGUSER"],
                     password=os.environ["PGPASSWORD"], dbname="assay") as conn:
    with conn.cursor(name="dear") as cur:
        cur.itersize = 7
        cur.execute("SELECT style_id, list_price FROM styles WHERE list_price >= %s ORDER BY style_id", (40.0,))
        out["named_cursor"] = [[r[0], r[1]] for r in cur]
    conn.rollback()
    codes = {}
    for name, stmt in [("unknown_table", "SELECT * FROM no_such_table WHERE 1 = %s"),
                       ("unknown_column", "SELECT no_such_column FROM styles WHERE 1 = %s"),
                       ("unknown_cursor", "FETCH 1 FROM no_such_cursor"),
                       ("write_cursor", "DECLARE w CURSOR FOR INSERT INTO styles SELECT * FROM styles WHERE 1 = %s")]:
        try:
            conn.execute(stmt, (1,) if "%s" in stmt else None)
            codes[name] = "ran"
        except psycopg.Error as e:
            codes[name] = e.sqlstate
        conn.rollback()
    out["codes"] = codes
# psycopg prepares a statement once it has run five times; after an error, its rollback
# deallocates them, and the connection goes on.
with psycopg.connect(host=os.environ["PGHOST"], port=os.environ["PGPORT"], user=os.environ["PGUSER"],
                     password=os.environ["PGPASSWORD"], dbname="assay") as conn:
    for i in range(7):
        conn.execute("SELECT count(*) FROM styles WHERE list_price > %s", (i,)).fetchone()
    try:
        conn.execute("SELECT no_such_column FROM styles")
    except psycopg.Error:
        conn.rollback()
    out["after_rollback"] = conn.execute("SELECT count(*) FROM styles WHERE list_price > %s", (0,)).fetchone()[0]
    try:
        conn.execute("SELECT 1 + %s +", (1,))
    except psycopg.Error as e:
        out["syntax_error"] = e.sqlstate
print(json.dumps(out))
"#;

#[tokio::test]
async fn sqlalchemy_connects_inspects_reflects_streams_and_reads_with_parameters() {
    let tmp = sample_copy();
    let data = tmp.path();
    let analyst = token(data, "analyst", "ana");
    let server = Server::start_with(data, &["--pg-listen", "127.0.0.1:0"]);
    let pg = server.pg.clone().expect("the pgwire address is reported");
    let (host, port) = pg.rsplit_once(':').unwrap();
    let out = run_python(
        SQLALCHEMY,
        &[
            ("PGHOST", host),
            ("PGPORT", port),
            ("PGUSER", "ana"),
            ("PGPASSWORD", &analyst),
        ],
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    // The dialect parsed the version (it refuses to connect when it cannot).
    assert_eq!(v["server_version_info"], serde_json::json!([16, 6]), "{v}");
    let version = v["version"].as_str().unwrap();
    assert!(version.starts_with("PostgreSQL 16.6 (assay "), "{version}");
    assert_eq!(v["version_num"], "160006");
    // Bound parameters give what the same query over HTTP gives.
    let dear = http_rows(&server.base, &analyst, DEAR).await;
    let from_pandas: String = v["dear"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| format!("{}|{}\n", r[0].as_str().unwrap(), r[1]))
        .collect();
    assert!(!dear.is_empty());
    assert_eq!(from_pandas, dear);
    assert_eq!(v["schemas"], serde_json::json!(["public"]));
    let tables: Vec<&str> = v["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    for table in [
        "events",
        "styles",
        "stock_receipts",
        "style_daily",
        "overrides",
    ] {
        assert!(tables.contains(&table), "{table} in {tables:?}");
    }
    // Every table and view is inspected; the styles table with the types HTTP serves.
    let columns = v["columns"].as_object().unwrap();
    for relation in ["events", "styles", "decisions", "style_funnel", "overrides"] {
        let of = columns[relation].as_array().unwrap();
        assert!(!of.is_empty(), "{relation}: {of:?}");
    }
    let styles: Vec<String> = columns["styles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| format!("{}:{}", c[0].as_str().unwrap(), c[1].as_str().unwrap()))
        .collect();
    for column in [
        "style_id:TEXT",
        "launch_at:TIMESTAMP",
        "list_price:DOUBLE PRECISION",
        "lead_time_days:INTEGER",
    ] {
        assert!(
            styles.contains(&column.to_owned()),
            "{column} in {styles:?}"
        );
    }
    // No keys, indexes or constraints: PostgreSQL's answer for such a table.
    assert_eq!(v["styles_keys"], serde_json::json!([[], [], [], []]));
    let pairs = |key: &str| -> String {
        v[key]
            .as_array()
            .unwrap_or_else(|| panic!("{key}: {v}"))
            .iter()
            .map(|r| format!("{}|{}\n", r[0].as_str().unwrap(), r[1]))
            .collect()
    };
    assert_eq!(pairs("reflected"), dear);
    assert_eq!(pairs("polars"), dear);
    assert_eq!(pairs("named_cursor"), dear);
    // 200 styles streamed through a server-side cursor in parts of at most 50.
    let parts: Vec<u64> = v["streamed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap())
        .collect();
    assert_eq!(parts, vec![50, 50, 50, 50], "{v}");
    assert_eq!(
        v["codes"],
        serde_json::json!({
            "unknown_table": "42P01",
            "unknown_column": "42703",
            "unknown_cursor": "34000",
            "write_cursor": "42501",
        })
    );
    // The same kinds over HTTP.
    let client = reqwest::Client::new();
    for (text, kind) in [
        ("SELECT * FROM no_such_table", "unknown-table"),
        ("SELECT no_such_column FROM styles", "unknown-column"),
    ] {
        let r = sql(&client, &server.base, &analyst, text, "application/json").await;
        assert_eq!(r.status(), 422);
        let problem: Value = r.json().await.unwrap();
        assert_eq!(
            problem["type"],
            format!("tag:assay,2026:problem:{kind}"),
            "{problem}"
        );
    }
    assert_eq!(v["after_rollback"], 200);
    // Text that does not parse is a syntax error on both protocols, not a server fault.
    assert_eq!(v["syntax_error"], "42601");
    let (ok, _, err) = psql(&pg, "ana", &analyst, "SELECT 1 +");
    assert!(!ok && err.contains("syntax error"), "{err}");
    server.stop();
}

#[tokio::test]
async fn refusals_and_limits_over_pgwire_leave_the_server_serving() {
    let tmp = sample_copy();
    let data = tmp.path();
    let analyst = token(data, "analyst", "ana");
    let server = Server::start_with(
        data,
        &[
            "--pg-listen",
            "127.0.0.1:0",
            "--sql-memory-mib",
            "8",
            // Room for the memory-limited query to reach its limit on a slow machine
            // before the clock stops it.
            "--sql-timeout-secs",
            "10",
        ],
    );
    let pg = server.pg.clone().unwrap();
    let settings = "SELECT name, value FROM information_schema.df_settings WHERE name IN ('datafusion.execution.batch_size', 'datafusion.runtime.memory_limit')";
    // (No ORDER BY: a sort reserves more than this server's 8 MiB per query.)
    let sorted = |text: String| {
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        lines.sort();
        lines
    };
    let settings_before = sorted(psql_ok(&pg, "ana", &analyst, settings));
    assert_eq!(settings_before.len(), 2, "{settings_before:?}");
    let written = tmp.path().join("copied.csv");
    let copy = format!("COPY (SELECT 1) TO '{}'", written.display());
    for statement in [
        "CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/passwd'",
        copy.as_str(),
        "INSERT INTO styles SELECT * FROM styles",
        "DELETE FROM overrides",
        "DROP TABLE events",
        "CREATE TABLE t AS SELECT 1",
        "SET datafusion.runtime.memory_limit = '1M'",
        "SET datafusion.execution.batch_size = 1",
    ] {
        let (ok, _, err) = psql(&pg, "ana", &analyst, statement);
        assert!(!ok, "{statement} must fail");
        assert!(err.contains("42501"), "{statement}: {err}");
        assert!(err.contains("not allowed"), "{statement}: {err}");
        assert_eq!(
            psql_ok(&pg, "ana", &analyst, "SELECT count(*) FROM styles"),
            "200\n"
        );
    }
    assert!(!written.exists(), "COPY wrote nothing");
    assert_eq!(
        sorted(psql_ok(&pg, "ana", &analyst, settings)),
        settings_before,
        "the shared session's settings are untouched"
    );

    // Over its memory budget: this query fails alone, a small one beside it succeeds.
    let big = "SELECT user_id, array_agg(event_id) AS ids, array_agg(session_id) AS s FROM events GROUP BY user_id ORDER BY user_id";
    let (pg2, analyst2) = (pg.clone(), analyst.clone());
    let heavy = std::thread::spawn(move || psql(&pg2, "ana", &analyst2, big));
    assert_eq!(
        psql_ok(&pg, "ana", &analyst, "SELECT count(*) FROM styles"),
        "200\n"
    );
    let (ok, _, err) = heavy.join().unwrap();
    assert!(!ok);
    assert!(
        err.contains("53200") && err.contains("memory limit of 8 MiB"),
        "{err}"
    );

    // Past the time limit: stopped with 57014.
    let (ok, _, err) = psql(
        &pg,
        "ana",
        &analyst,
        "SELECT sum(value % 7) FROM range(1000000000000)",
    );
    assert!(!ok);
    assert!(err.contains("57014") && err.contains("time limit"), "{err}");

    // A flat sum of 2,000 terms: an error or an answer, never a crashed server.
    let deep = format!("SELECT {}", vec!["1"; 2000].join("+"));
    let _ = psql(&pg, "ana", &analyst, &deep);
    assert_eq!(psql_ok(&pg, "ana", &analyst, "SELECT 1"), "1\n");
    still_serving(&reqwest::Client::new(), &server.base).await;
    server.stop();
}

/// A certificate authority and a server certificate for 127.0.0.1 it signed, made with
/// the real openssl: (CA certificate, server certificate, server key).
fn test_certificates(dir: &std::path::Path, ca_name: &str) -> [std::path::PathBuf; 3] {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl runs (installed by scripts/deps)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let subject = format!("/CN={ca_name}");
    openssl(&[
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
        "-days", "2", "-subj", &subject,
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ]);
    ["ca.crt", "server.crt", "server.key"].map(|f| dir.join(f))
}

const ADBC_TLS: &str = r#"
import json, os
import adbc_driver_flightsql.dbapi as flight_sql
from adbc_driver_flightsql import DatabaseOptions

def count(uri, roots):
    options = {DatabaseOptions.AUTHORIZATION_HEADER.value: "Bearer " + os.environ["TOKEN"]}
    if roots:
        options[DatabaseOptions.TLS_ROOT_CERTS.value] = open(roots).read()
    try:
        with flight_sql.connect(uri, db_kwargs=options) as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) AS n FROM styles")
            return cur.fetchone()[0]
    except Exception as e:
        return "error: " + str(e)

tls, plain = os.environ["FLIGHT"], os.environ["FLIGHT"].replace("grpc+tls://", "grpc://")
print(json.dumps({
    "verified": count(tls, os.environ["CA"]),
    "other_ca": count(tls, os.environ["OTHER_CA"]),
    "plaintext": count(plain, None),
}))
"#;

#[tokio::test]
async fn tls_on_pgwire_and_flight_is_verified_and_plaintext_is_refused_when_required() {
    let tmp = sample_copy();
    let data = tmp.path();
    let analyst = token(data, "analyst", "ana");
    let certs = tempfile::tempdir().unwrap();
    let [ca, cert, key] = test_certificates(certs.path(), "assay test CA");
    let other = tempfile::tempdir().unwrap();
    let [other_ca, _, _] = test_certificates(other.path(), "someone else's CA");
    let server = Server::start_with(
        data,
        &[
            "--pg-listen",
            "127.0.0.1:0",
            "--flight-listen",
            "127.0.0.1:0",
            "--tls-cert",
            path_str(&cert),
            "--tls-key",
            path_str(&key),
            "--tls-required",
        ],
    );
    let pg = server.pg.clone().unwrap();
    let count = "SELECT count(*) FROM styles";
    let verify =
        |root: &std::path::Path| format!("sslmode=verify-full sslrootcert={}", path_str(root));

    // The certificate checks out against its CA, for the address psql connected to.
    let (ok, out, err) = psql_with(&pg, "ana", &analyst, &verify(&ca), count);
    assert!(ok, "{err}");
    let styles: u64 = out.trim().parse().unwrap();
    assert!(styles > 100, "{out}");
    // Against another CA it does not: the client refuses before sending the password.
    let (ok, _, err) = psql_with(&pg, "ana", &analyst, &verify(&other_ca), count);
    assert!(!ok && err.contains("certificate verify failed"), "{err}");
    // Plaintext is refused, with what to do instead.
    let (ok, _, err) = psql_with(&pg, "ana", &analyst, "sslmode=disable", count);
    assert!(
        !ok && err.contains("only TLS connections") && err.contains("sslmode=require"),
        "{err}"
    );
    // sslmode=require encrypts without checking the name.
    let (ok, out, _) = psql_with(&pg, "ana", &analyst, "sslmode=require", count);
    assert!(ok && out.trim() == styles.to_string());

    // Flight SQL speaks only TLS: ADBC with the CA reads the same count.
    let flight = server.flight.clone().unwrap();
    assert!(flight.starts_with("grpc+tls://"), "{flight}");
    let out = run_python(
        ADBC_TLS,
        &[
            ("FLIGHT", &flight),
            ("TOKEN", &analyst),
            ("CA", path_str(&ca)),
            ("OTHER_CA", path_str(&other_ca)),
        ],
    );
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["verified"], styles, "{v}");
    for refused in ["other_ca", "plaintext"] {
        assert!(
            v[refused].as_str().is_some_and(|e| e.starts_with("error")),
            "{v}"
        );
    }
    server.stop();
}

/// What a JDBC tool does on connecting, through the real pgjdbc (Debian's
/// `libpostgresql-jdbc-java`) on the machine's Java: the catalog reads of a table
/// browser, a prepared statement reused past the driver's server-side threshold (binary
/// results), typed reads, and a refusal.
#[tokio::test]
async fn pgjdbc_reads_the_catalog_reuses_prepared_statements_and_reads_typed_values() {
    let tmp = sample_copy();
    let data = tmp.path();
    let analyst = token(data, "analyst", "ana");
    let server = Server::start_with(data, &["--pg-listen", "127.0.0.1:0"]);
    let pg = server.pg.clone().unwrap();

    let v = jdbc_probe(&pg, "ana", &analyst, &[], &[]);
    let texts = |step: &str| -> Vec<String> {
        v[step]
            .as_array()
            .unwrap_or_else(|| panic!("{step}: {}", v[step]))
            .iter()
            .map(|t| {
                t.as_str()
                    .unwrap_or_else(|| panic!("{step}: {t} in {}", v[step]))
                    .to_owned()
            })
            .collect()
    };

    assert!(
        v["product"].as_str().unwrap().starts_with("PostgreSQL 16"),
        "{v}"
    );
    assert!(texts("schemas").contains(&"public".to_owned()), "{v}");
    let tables = texts("tables");
    for table in [
        "events",
        "styles",
        "stock_receipts",
        "decisions",
        "style_funnel",
        "overrides",
    ] {
        assert!(tables.iter().any(|t| t == table), "{table} in {tables:?}");
    }
    let columns = texts("columns");
    for column in [
        "style_id:text",
        "launch_at:timestamptz",
        "list_price:float8",
        "lead_time_days:int4",
    ] {
        assert!(
            columns.iter().any(|c| c == column),
            "{column} in {columns:?}"
        );
    }
    // No keys or indexes: the empty answers PostgreSQL gives for such a table.
    assert_eq!(texts("primary_keys"), Vec::<String>::new());
    assert_eq!(texts("index_info"), Vec::<String>::new());
    let types = texts("type_info");
    for t in [
        "bool",
        "int4",
        "int8",
        "float8",
        "text",
        "date",
        "timestamptz",
    ] {
        assert!(types.iter().any(|n| n == t), "{t} in getTypeInfo");
    }

    // The reused statement answers as the same query over HTTP, every time.
    let (above_20, above_40) = dresses_above_20_and_40(&server.base, &analyst).await;
    let expected: Vec<String> = (0..8)
        .map(|i| if i % 2 == 0 { &above_20 } else { &above_40 }.clone())
        .collect();
    assert_eq!(texts("prepared"), expected);

    let typed: Vec<String> = v["typed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            let cells: Vec<String> = row
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap().to_owned())
                .collect();
            cells.join("|")
        })
        .collect();
    let over_http = http_rows(
        &server.base,
        &analyst,
        "SELECT style_id, list_price, CAST(date_part('epoch', launch_at) AS BIGINT) AS launched, lead_time_days \
         FROM styles ORDER BY style_id LIMIT 3",
    )
    .await;
    assert_eq!(typed.join("\n") + "\n", over_http);

    let last = http_rows(&server.base, &analyst, "SELECT max(style_id) FROM styles").await;
    assert_eq!(
        v["fetch_size"],
        serde_json::json!(["200", last.trim()]),
        "every row, read in parts"
    );
    let refused = v["refused"].as_str().unwrap();
    assert!(refused.starts_with("42501"), "{refused}");
    still_serving(&reqwest::Client::new(), &server.base).await;
    server.stop();
}

#[tokio::test]
async fn node_postgres_binds_parameters_reuses_named_statements_and_reads_types() {
    let tmp = sample_copy();
    let data = tmp.path();
    let analyst = token(data, "analyst", "ana");
    let server = Server::start_with(data, &["--pg-listen", "127.0.0.1:0"]);
    let pg = server.pg.clone().expect("the pgwire address is reported");
    let v = node_probe(&pg, "ana", &analyst, &[], &[]);

    // Bound parameters answer as the same query over HTTP.
    let dear = http_rows(&server.base, &analyst, DEAR).await;
    let from_node: String = v["dear"]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"))
        .iter()
        .map(|r| format!("{}|{}\n", r[0].as_str().unwrap(), r[1]))
        .collect();
    assert!(!dear.is_empty());
    assert_eq!(from_node, dear);
    // The named statement, bound four times, answers each time as HTTP does.
    let (above_20, above_40) = dresses_above_20_and_40(&server.base, &analyst).await;
    assert_eq!(
        v["named"],
        serde_json::json!([above_20, above_40, above_20, above_40]),
        "{v}"
    );
    // A timestamptz is a Date at the instant HTTP gives; an int a number.
    let launched = http_rows(
        &server.base,
        &analyst,
        "SELECT style_id, CAST(date_part('epoch', launch_at) AS BIGINT) FROM styles ORDER BY style_id LIMIT 2",
    )
    .await;
    let typed: String = v["typed"]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"))
        .iter()
        .map(|r| {
            assert_eq!(r[2], "number", "{v}");
            format!("{}|{}\n", r[0].as_str().unwrap(), r[1].as_str().unwrap())
        })
        .collect();
    assert_eq!(typed, launched);
    assert_eq!(v["unknown_table"], serde_json::json!({"error": "42P01"}));
    assert_eq!(v["refused"], serde_json::json!({"error": "42501"}));
    assert_eq!(v["after"], "200");
    server.stop();
}

const CANCEL: &str = r#"
import json, os, socket, struct, threading, time, psycopg
conn = psycopg.connect(host=os.environ["PGHOST"], port=os.environ["PGPORT"], user=os.environ["PGUSER"],
                       password=os.environ["PGPASSWORD"], dbname="assay", autocommit=True)
out = {}
def forged_cancel():
    # The connection's process id with a wrong key: must stop nothing.
    with socket.create_connection((os.environ["PGHOST"], int(os.environ["PGPORT"]))) as s:
        s.sendall(struct.pack("!iiii", 16, 80877102, conn.info.backend_pid, 12345))
        s.recv(1)
started = time.monotonic()
def run():
    try:
        conn.execute("SELECT sum(value % 7) FROM range(1000000000000)").fetchall()
        out["query"] = "ran"
    except psycopg.Error as e:
        out["query"] = e.sqlstate
        out["message"] = str(e)
    out["seconds"] = time.monotonic() - started
worker = threading.Thread(target=run)
worker.start()
time.sleep(1.5)
forged_cancel()
time.sleep(2.0)
out["running_after_forged"] = worker.is_alive()
conn.cancel()
worker.join(60)
out["after"] = conn.execute("SELECT count(*) FROM styles").fetchone()[0]
print(json.dumps(out))
"#;

#[tokio::test]
async fn a_cancel_request_with_the_connections_key_stops_its_query_and_a_forged_one_does_not() {
    let tmp = sample_copy();
    let data = tmp.path();
    let analyst = token(data, "analyst", "ana");
    let server = Server::start_with(
        data,
        &["--pg-listen", "127.0.0.1:0", "--sql-timeout-secs", "300"],
    );
    let pg = server.pg.clone().expect("the pgwire address is reported");
    let (host, port) = pg.rsplit_once(':').unwrap();
    let out = run_python(
        CANCEL,
        &[
            ("PGHOST", host),
            ("PGPORT", port),
            ("PGUSER", "ana"),
            ("PGPASSWORD", &analyst),
        ],
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["running_after_forged"], true, "{v}");
    assert_eq!(v["query"], "57014", "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("user request"),
        "{v}"
    );
    // Stopped by the cancel, long before its 300 s limit.
    assert!(v["seconds"].as_f64().unwrap() < 60.0, "{v}");
    assert_eq!(v["after"], 200);
    still_serving(&reqwest::Client::new(), &server.base).await;
    server.stop();
}
