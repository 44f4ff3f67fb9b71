//! Arrow Flight SQL with the real ADBC driver (Python `adbc-driver-flightsql`) against
//! the real server: the same rows as HTTP, the catalog, tokens, refusals and limits.

use serde_json::Value;

use crate::server::{Server, sample_copy, token};
use crate::sql::{sql, still_serving};
use crate::support::run_python;

const ADBC: &str = r#"
import json, os
import adbc_driver_flightsql.dbapi as flight_sql
from adbc_driver_flightsql import DatabaseOptions

def connect(token):
    return flight_sql.connect(os.environ["FLIGHT"], db_kwargs={
        DatabaseOptions.AUTHORIZATION_HEADER.value: "Bearer " + token})

out = {}
with connect(os.environ["TOKEN"]) as conn, conn.cursor() as cur:
    cur.execute(os.environ["QUERY"])
    table = cur.fetch_arrow_table()
    out["columns"] = table.column_names
    out["rows"] = table.to_pylist()
    # Polars over the same ADBC connection.
    import polars as pl
    out["polars_rows"] = pl.read_database(os.environ["QUERY"], connection=conn).to_dicts()
    objects = conn.adbc_get_objects(depth="tables").read_all().to_pylist()
    out["tables"] = sorted(t["table_name"] for c in objects
                           for s in c["catalog_db_schemas"] or []
                           for t in s["db_schema_tables"] or [])
    out["styles_schema"] = conn.adbc_get_table_schema("styles").names
    info = conn.adbc_get_info()
    out["info"] = [info["vendor_name"], info["vendor_version"]]
    errors = {}
    for name, stmt in json.loads(os.environ["REFUSED"]).items():
        try:
            cur.execute(stmt)
            cur.fetchall()
            errors[name] = "ran"
        except Exception as e:
            errors[name] = str(e)
    out["errors"] = errors
    cur.execute("SELECT count(*) AS n FROM styles")
    out["after"] = cur.fetchone()[0]
    # Bound parameters (ADBC prepares, binds and executes), in both placeholder styles,
    # the same statement reused with other values.
    bound = {}
    for style, sql in (("qmark", "SELECT count(*) AS n FROM styles WHERE list_price > ? AND category = ?"),
                       ("dollar", "SELECT count(*) AS n FROM styles WHERE list_price > $1 AND category = $2")):
        for price in (20.0, 40.0):
            cur.execute(sql, (price, "dresses"))
            bound[f"{style}_{price:g}"] = cur.fetchone()[0]
    for price in (20.0, 40.0):
        cur.execute(f"SELECT count(*) AS n FROM styles WHERE list_price > {price} AND category = 'dresses'")
        bound[f"literal_{price:g}"] = cur.fetchone()[0]
    out["bound"] = bound
    prepared_refused = {}
    for name, (sql, params) in {
        "insert": ("INSERT INTO styles SELECT * FROM styles WHERE list_price > ?", (1.0,)),
        "copy": (f"COPY (SELECT style_id FROM styles WHERE list_price > ?) TO '{os.environ['WRITTEN']}'", (1.0,)),
    }.items():
        try:
            cur.execute(sql, params)
            cur.fetchall()
            prepared_refused[name] = "ran"
        except Exception as e:
            prepared_refused[name] = str(e)
    out["prepared_refused"] = prepared_refused
for name, tok in [("viewer", os.environ["VIEWER"]), ("wrong", "assay_wrong")]:
    try:
        with connect(tok) as conn, conn.cursor() as cur:
            cur.execute("SELECT 1")
            cur.fetchall()
        out[name] = "ran"
    except Exception as e:
        out[name] = str(e)
print(json.dumps(out, default=str))
"#;

#[tokio::test]
async fn adbc_reads_the_same_rows_as_http_and_is_refused_what_http_refuses() {
    let tmp = sample_copy();
    let data = tmp.path();
    let analyst = token(data, "analyst", "ana");
    let viewer = token(data, "viewer", "vic");
    let server = Server::start_with(
        data,
        &[
            "--flight-listen",
            "127.0.0.1:0",
            "--sql-memory-mib",
            "8",
            // Room for the memory-limited query to reach its limit before the time
            // limit on a slow CI machine (it once hit the 3 s limit first).
            "--sql-timeout-secs",
            "10",
        ],
    );
    let flight = server
        .flight
        .clone()
        .expect("the Flight SQL address is reported");
    let written = tmp.path().join("copied.csv");
    let query = "SELECT style_id, market, verdict, p_keep, reorder_units FROM decisions WHERE market = 'ALL' ORDER BY style_id LIMIT 50";
    let refused = serde_json::json!({
        "copy": format!("COPY (SELECT 1) TO '{}'", written.display()),
        "external": "CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/passwd'",
        "insert": "INSERT INTO styles SELECT * FROM styles",
        "set": "SET datafusion.execution.batch_size = 1",
        "memory": "SELECT user_id, array_agg(event_id) AS ids, array_agg(session_id) AS s FROM events GROUP BY user_id",
        "time": "SELECT sum(value % 7) FROM range(1000000000000)",
    });
    let out = run_python(
        ADBC,
        &[
            ("FLIGHT", &flight),
            ("TOKEN", &analyst),
            ("VIEWER", &viewer),
            ("QUERY", query),
            ("REFUSED", &refused.to_string()),
            ("WRITTEN", &written.display().to_string()),
        ],
    );
    let v: Value = serde_json::from_str(&out).unwrap();

    let client = reqwest::Client::new();
    let http: Value = sql(&client, &server.base, &analyst, query, "application/json")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["rows"].as_array().unwrap().len(), 50);
    assert_eq!(
        v["rows"], http["rows"],
        "the same rows over Flight SQL and HTTP"
    );
    assert_eq!(v["polars_rows"], http["rows"], "and through Polars");
    assert_eq!(
        v["columns"],
        serde_json::json!(["style_id", "market", "verdict", "p_keep", "reorder_units"])
    );
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
        "style_funnel",
        "style_daily",
        "decisions",
        "overrides",
    ] {
        assert!(tables.contains(&table), "{table} in {tables:?}");
    }
    assert!(
        v["styles_schema"]
            .as_array()
            .unwrap()
            .contains(&Value::from("category"))
    );
    // The driver's GetSqlInfo: who the server is.
    assert_eq!(v["info"][0], "assay", "{}", v["info"]);
    assert!(
        v["info"][1].as_str().unwrap().contains("Apache DataFusion"),
        "{}",
        v["info"]
    );

    // Bound parameters answer as the same query with the values written in.
    let bound = &v["bound"];
    for price in ["20", "40"] {
        let literal = &bound[format!("literal_{price}")];
        assert!(literal.as_u64().is_some(), "{bound}");
        for style in ["qmark", "dollar"] {
            assert_eq!(&bound[format!("{style}_{price}")], literal, "{bound}");
        }
    }
    assert_ne!(
        bound["literal_20"], bound["literal_40"],
        "the values were bound: {bound}"
    );
    for (name, e) in v["prepared_refused"].as_object().unwrap() {
        let e = e.as_str().unwrap();
        assert!(e.contains("not allowed"), "a prepared {name}: {e}");
    }
    assert!(!written.exists(), "a prepared COPY wrote nothing");

    let errors = &v["errors"];
    for name in ["copy", "external", "insert", "set"] {
        let e = errors[name].as_str().unwrap();
        assert!(e.contains("PermissionDenied"), "{name}: {e}");
        assert!(e.contains("not allowed"), "{name}: {e}");
    }
    assert!(
        errors["memory"]
            .as_str()
            .unwrap()
            .contains("memory limit of 8 MiB"),
        "{}",
        errors["memory"]
    );
    let time = errors["time"].as_str().unwrap();
    assert!(time.contains("time limit"), "{time}");
    // The gRPC codes are the ones the other protocols' statuses mean.
    assert!(
        errors["memory"]
            .as_str()
            .unwrap()
            .contains("ResourceExhausted"),
        "{}",
        errors["memory"]
    );
    assert!(time.contains("DeadlineExceeded"), "{time}");
    assert!(!written.exists(), "COPY wrote nothing");
    assert_eq!(
        v["after"], 200,
        "the connection keeps working after refusals"
    );
    assert!(
        v["viewer"].as_str().unwrap().contains("may not run SQL"),
        "{}",
        v["viewer"]
    );
    assert!(
        v["wrong"].as_str().unwrap().contains("unknown token"),
        "{}",
        v["wrong"]
    );
    still_serving(&client, &server.base).await;
    server.stop();
}

/// What a JDBC bridge or BI tool asks over Flight SQL before any query, through
/// arrow-flight's own Flight SQL client: the server's info, the types its answers
/// hold, and the (no) primary keys of a table.
#[tokio::test]
async fn flight_sql_metadata_answers_sql_info_types_and_keys() {
    use arrow::array::AsArray;
    use arrow_flight::sql::client::FlightSqlServiceClient;
    use arrow_flight::sql::{CommandGetPrimaryKeys, CommandGetXdbcTypeInfo, SqlInfo};
    use futures::TryStreamExt;

    let tmp = sample_copy();
    let data = tmp.path();
    let analyst = token(data, "analyst", "ana");
    let server = Server::start_with(data, &["--flight-listen", "127.0.0.1:0"]);
    let flight = server
        .flight
        .clone()
        .expect("the Flight SQL address is reported");
    let flight = flight.trim_start_matches("grpc://").to_owned();
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{flight}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = FlightSqlServiceClient::new(channel);
    client.set_header("authorization", format!("Bearer {analyst}"));
    async fn fetch(
        client: &mut FlightSqlServiceClient<tonic::transport::Channel>,
        info: arrow_flight::FlightInfo,
    ) -> arrow::record_batch::RecordBatch {
        let schema = std::sync::Arc::new(info.clone().try_decode_schema().unwrap());
        let ticket = info.endpoint[0].ticket.clone().unwrap();
        let batches: Vec<arrow::record_batch::RecordBatch> = client
            .do_get(ticket)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        arrow::compute::concat_batches(&schema, &batches).unwrap()
    }

    let info = client
        .get_sql_info(vec![
            SqlInfo::FlightSqlServerName,
            SqlInfo::FlightSqlServerReadOnly,
        ])
        .await
        .unwrap();
    let info = fetch(&mut client, info).await;
    assert_eq!(info.num_rows(), 2);
    let names: Vec<u32> = info
        .column(0)
        .as_primitive::<arrow::datatypes::UInt32Type>()
        .values()
        .to_vec();
    assert_eq!(
        names,
        vec![
            SqlInfo::FlightSqlServerName as u32,
            SqlInfo::FlightSqlServerReadOnly as u32
        ]
    );
    let values = info.column(1).as_union();
    assert_eq!(values.value(0).as_string::<i32>().value(0), "assay");
    assert!(values.value(1).as_boolean().value(0), "read-only");

    let types = client
        .get_xdbc_type_info(CommandGetXdbcTypeInfo { data_type: None })
        .await
        .unwrap();
    let types = fetch(&mut client, types).await;
    let names: Vec<&str> = types
        .column(0)
        .as_string::<i32>()
        .iter()
        .flatten()
        .collect();
    for t in [
        "BOOLEAN",
        "INTEGER",
        "BIGINT",
        "DOUBLE",
        "VARCHAR",
        "DATE",
        "TIMESTAMP WITH TIME ZONE",
    ] {
        assert!(names.contains(&t), "{t} in {names:?}");
    }

    let keys = client
        .get_primary_keys(CommandGetPrimaryKeys {
            catalog: None,
            db_schema: None,
            table: "styles".into(),
        })
        .await
        .unwrap();
    let keys = fetch(&mut client, keys).await;
    assert_eq!(keys.num_rows(), 0, "assay's tables have no primary keys");
    assert_eq!(keys.schema().field(2).name(), "table_name");

    // No token, no metadata.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{flight}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut anonymous = FlightSqlServiceClient::new(channel);
    assert!(
        anonymous
            .get_sql_info(vec![SqlInfo::FlightSqlServerName])
            .await
            .is_err()
    );
    server.stop();
}
