//! Analysts' SQL over HTTP against the real server: formats, refusals and limits.

use serde_json::{Value, json};

use crate::server::{Server, sample_copy, token};
use crate::support::{assay_ok, path_str};

pub async fn sql(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    text: &str,
    accept: &str,
) -> reqwest::Response {
    client
        .post(format!("{base}/v1/sql"))
        .bearer_auth(token)
        .header("accept", accept)
        .json(&json!({ "sql": text }))
        .send()
        .await
        .unwrap()
}

pub async fn still_serving(client: &reqwest::Client, base: &str) {
    let r = client.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200, "the server keeps serving");
}

#[tokio::test]
async fn one_query_in_json_csv_and_arrow_gives_the_same_rows_as_the_cli() {
    let tmp = sample_copy();
    let data = tmp.path();
    let analyst = token(data, "analyst", "ana");
    let viewer = token(data, "viewer", "vic");
    let server = Server::start(data);
    let client = reqwest::Client::new();
    let query = "SELECT style_id, market, views, units_sold FROM style_funnel ORDER BY style_id, market LIMIT 50";

    let r = sql(&client, &server.base, &analyst, query, "application/json").await;
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.unwrap();
    // Strings of every input table are read as views, so the funnel's ids are too.
    assert_eq!(
        answer["columns"][0],
        json!({"name": "style_id", "type": "Utf8View"})
    );
    assert_eq!(answer["row_count"], 50);
    assert_eq!(answer["truncated"], false);
    let from_json: Vec<String> = answer["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{},{},{},{}",
                r["style_id"].as_str().unwrap(),
                r["market"].as_str().unwrap(),
                r["views"],
                r["units_sold"]
            )
        })
        .collect();

    let r = sql(&client, &server.base, &analyst, query, "text/csv").await;
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = r.text().await.unwrap();
    let from_csv: Vec<String> = csv.lines().skip(1).map(str::to_string).collect();

    let r = sql(
        &client,
        &server.base,
        &analyst,
        query,
        "application/vnd.apache.arrow.stream",
    )
    .await;
    let bytes = r.bytes().await.unwrap();
    let reader =
        arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes.to_vec()), None)
            .unwrap();
    let batches: Vec<_> = reader.map(Result::unwrap).collect();
    let mut out = Vec::new();
    {
        let mut writer = arrow::csv::WriterBuilder::new()
            .with_header(false)
            .build(&mut out);
        for b in &batches {
            writer.write(b).unwrap();
        }
    }
    let from_arrow: Vec<String> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();

    let cli = assay_ok(&["sql", "--data", path_str(data), "--format", "csv", query]);
    let from_cli: Vec<String> = cli.lines().skip(1).map(str::to_string).collect();
    assert_eq!(from_json.len(), 50);
    assert_eq!(from_json, from_csv);
    assert_eq!(from_csv, from_arrow);
    assert_eq!(from_arrow, from_cli);

    // Text a spreadsheet would run as a formula is written as text in CSV (HTTP and
    // CLI alike); numbers, and the JSON answer, are left as they are.
    let formula = "SELECT '=HYPERLINK(\"http://evil.example\")' AS f, '@cmd' AS g, -1.5 AS n";
    let r = sql(&client, &server.base, &analyst, formula, "text/csv").await;
    let over_http = r.text().await.unwrap();
    assert_eq!(
        over_http.lines().nth(1),
        Some("\"'=HYPERLINK(\"\"http://evil.example\"\")\",'@cmd,-1.5"),
        "{over_http}"
    );
    let over_cli = assay_ok(&["sql", "--data", path_str(data), "--format", "csv", formula]);
    assert_eq!(over_cli, over_http);
    let r = sql(&client, &server.base, &analyst, formula, "application/json").await;
    assert_eq!(r.json::<Value>().await.unwrap()["rows"][0]["g"], "@cmd");

    // Every table is there, in the session the API uses.
    let tables = sql(
        &client,
        &server.base,
        &analyst,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
        "application/json",
    )
    .await;
    let names: Vec<String> = tables.json::<Value>().await.unwrap()["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["table_name"].as_str().unwrap().to_string())
        .collect();
    for t in [
        "decisions",
        "events",
        "overrides",
        "stock_receipts",
        "style_daily",
        "style_funnel",
        "styles",
    ] {
        assert!(names.contains(&t.to_string()), "{t} missing from {names:?}");
    }
    // Only analysts (and admins) run SQL.
    let r = sql(&client, &server.base, &viewer, query, "application/json").await;
    assert_eq!(r.status(), 403);
    let r = sql(&client, &server.base, &analyst, query, "image/png").await;
    assert_eq!(r.status(), 406);
    server.stop();
}

#[tokio::test]
async fn writes_files_settings_and_enormous_sql_are_refused_and_the_server_keeps_serving() {
    let tmp = sample_copy();
    let data = tmp.path();
    let analyst = token(data, "analyst", "ana");
    let server = Server::start(data);
    let client = reqwest::Client::new();
    let victim = tmp.path().join("written-by-copy.csv");
    let refused = [
        (
            format!("COPY (SELECT 1) TO '{}'", victim.display()),
            403,
            "COPY",
        ),
        (
            "CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/passwd'".to_string(),
            403,
            "CreateExternalTable",
        ),
        (
            "INSERT INTO styles SELECT * FROM styles".to_string(),
            403,
            "DML",
        ),
        ("DROP TABLE events".to_string(), 403, "DDL"),
        (
            "SET datafusion.runtime.memory_limit = '1G'".to_string(),
            403,
            "SetVariable",
        ),
        ("CREATE VIEW v AS SELECT 1".to_string(), 403, "DDL"),
        (
            "SELECT * FROM '/etc/passwd'".to_string(),
            422,
            "does not exist",
        ),
        ("SELEC nonsense".to_string(), 422, ""),
        (String::new(), 422, "No SQL statements"),
    ];
    for (text, status, says) in &refused {
        let r = sql(&client, &server.base, &analyst, text, "application/json").await;
        assert_eq!(r.status().as_u16(), *status, "{text}");
        let problem: Value = r.json().await.unwrap();
        assert!(
            problem["detail"].as_str().unwrap().contains(says),
            "{text}: {problem}"
        );
        still_serving(&client, &server.base).await;
    }
    assert!(!victim.exists(), "COPY wrote a file");
    // A flat sum of 1,500 terms overflows an 8 MiB stack; it plans on the query
    // runtime's large ones. (DataFusion's planning time grows with the square of the
    // depth: 3,000 terms take over a minute in a debug build.)
    let deep = format!("SELECT {}", vec!["1"; 1500].join("+"));
    let r = sql(&client, &server.base, &analyst, &deep, "application/json").await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v["rows"][0].as_object().unwrap().values().next().unwrap(),
        1500
    );
    // Text past the limit is refused before parsing.
    let huge = format!("SELECT 1 WHERE {}", vec!["1=1"; 20_000].join(" OR "));
    let r = sql(&client, &server.base, &analyst, &huge, "application/json").await;
    assert_eq!(r.status(), 413);
    still_serving(&client, &server.base).await;
    server.stop();
}

#[tokio::test]
async fn memory_time_row_and_concurrency_limits_stop_one_query_not_the_server() {
    let tmp = sample_copy();
    let data = tmp.path();
    let analyst = token(data, "analyst", "ana");
    let server = Server::start_with(
        data,
        &[
            "--sql-memory-mib",
            "8",
            // Long enough that the memory-limited query reaches its limit first even on
            // a slow CI machine.
            "--sql-timeout-secs",
            "10",
            "--sql-max-rows",
            "10",
            "--sql-max-concurrent",
            "2",
        ],
    );
    let client = reqwest::Client::new();
    let base = server.base.clone();
    // A query over its memory budget fails alone while a small one runs beside it.
    let big = "SELECT user_id, array_agg(event_id) AS ids, array_agg(session_id) AS s FROM events GROUP BY user_id ORDER BY user_id";
    let small = "SELECT count(*) AS n FROM styles";
    let (b, s) = tokio::join!(
        sql(&client, &base, &analyst, big, "application/json"),
        sql(&client, &base, &analyst, small, "application/json"),
    );
    assert_eq!(b.status(), 422);
    let problem: Value = b.json().await.unwrap();
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("memory limit of 8 MiB"),
        "{problem}"
    );
    assert_eq!(problem["type"], "tag:assay,2026:problem:memory-limit");
    assert_eq!(s.status(), 200);
    assert_eq!(s.json::<Value>().await.unwrap()["rows"][0]["n"], 200);

    // The row limit cuts an answer and says so.
    let r = sql(
        &client,
        &base,
        &analyst,
        "SELECT event_id FROM events",
        "application/json",
    )
    .await;
    assert_eq!(r.headers()["x-assay-row-limit"], "10");
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (v["row_count"].as_u64(), v["truncated"].as_bool()),
        (Some(10), Some(true))
    );

    // The time limit stops runaway queries; while two run, a third is turned away. All
    // three overlap, whichever order their requests reach the server in.
    // Streams a trillion generated rows in constant memory: only the clock can stop it.
    let slow = "SELECT sum(value % 7) AS s FROM range(1000000000000)";
    let late = async {
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        sql(&client, &base, &analyst, slow, "application/json").await
    };
    let (a, b, c) = tokio::join!(
        sql(&client, &base, &analyst, slow, "application/json"),
        sql(&client, &base, &analyst, slow, "application/json"),
        late,
    );
    let mut statuses = Vec::new();
    for r in [a, b, c] {
        let status = r.status().as_u16();
        let problem: Value = r.json().await.unwrap();
        let detail = problem["detail"].as_str().unwrap().to_owned();
        match status {
            422 => {
                assert!(detail.contains("time limit of 10s"), "{problem}");
                assert_eq!(problem["type"], "tag:assay,2026:problem:timeout");
            }
            429 => {
                // This token's share (2 of 2) is taken: said before the server's cap.
                assert!(detail.contains("this token already runs 2"), "{problem}");
                assert_eq!(problem["type"], "tag:assay,2026:problem:busy");
            }
            _ => panic!("unexpected {status}: {problem}"),
        }
        statuses.push(status);
    }
    statuses.sort_unstable();
    assert_eq!(statuses, [422, 422, 429]);
    // A stopped query gives its slot back once its threads notice; soon, not never.
    let mut freed = false;
    for _ in 0..50 {
        if sql(&client, &base, &analyst, small, "application/json")
            .await
            .status()
            == 200
        {
            freed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(freed, "the slots are free again after the time limit");
    still_serving(&client, &base).await;
    server.stop();
}

/// Opens a raw connection that sends `request` and then never reads.
async fn stalled(addr: &str, request: String) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    stream
}

#[tokio::test]
async fn clients_that_never_read_or_never_finish_sending_do_not_hold_the_server() {
    let tmp = sample_copy();
    let data = tmp.path();
    let analyst = token(data, "analyst", "ana");
    let server = Server::start_with(
        data,
        &["--sql-idle-secs", "2", "--request-timeout-secs", "3"],
    );
    let client = reqwest::Client::new();
    let addr = server.base.trim_start_matches("http://").to_string();

    // Four clients ask for answers far larger than the socket buffers and read nothing:
    // they take every query slot until the idle limit frees them.
    let body = json!({"sql": "SELECT *, repeat('x', 400) AS pad FROM events"}).to_string();
    let request = format!(
        "POST /v1/sql HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {analyst}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut readers_that_never_read = Vec::new();
    for _ in 0..4 {
        readers_that_never_read.push(stalled(&addr, request.clone()).await);
    }
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    let first = sql(
        &client,
        &server.base,
        &analyst,
        "SELECT 1 AS one",
        "application/json",
    )
    .await;
    assert_eq!(
        first.status(),
        429,
        "the stalled clients hold every slot at first"
    );
    let mut answered = None;
    for _ in 0..60 {
        let r = sql(
            &client,
            &server.base,
            &analyst,
            "SELECT 1 AS one",
            "application/json",
        )
        .await;
        if r.status() == 200 {
            answered = Some(r.json::<Value>().await.unwrap());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let answered =
        answered.expect("the idle limit frees the slots while the stalled clients stay connected");
    assert_eq!(answered["rows"][0]["one"], 1);

    // A body that never finishes arriving is cut off at the request timeout.
    let slow_body = format!(
        "POST /v1/sql HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {analyst}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"sql\": \"SEL"
    );
    let mut slow = stalled(&addr, slow_body).await;
    let mut head = vec![0u8; 64];
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        tokio::io::AsyncReadExt::read(&mut slow, &mut head),
    )
    .await
    .expect("the server answers a body that stalls instead of waiting for it")
    .unwrap();
    let status = String::from_utf8_lossy(&head[..read]).to_string();
    assert!(
        status.starts_with("HTTP/1.1 4"),
        "a stalled body is refused: {status}"
    );
    drop(readers_that_never_read);
    still_serving(&client, &server.base).await;
    server.stop();
}
