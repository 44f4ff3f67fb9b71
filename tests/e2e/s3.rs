//! A dataset on S3-compatible storage: moto's S3 server, really started on 127.0.0.1.
//! Ingest, decide, serve and query it with `--data s3://…`, and get what the same
//! steps give on a local folder.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use assay_engine::storage::{Storage, s3};
use serde_json::{Value, json};

use crate::server::{Server, get_json};
use crate::support::{assay_env, path_str, venv_python, walk};

/// moto's server, stopped when dropped.
struct Moto {
    child: Child,
    endpoint: String,
}

impl Moto {
    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let bin = venv_python().with_file_name("moto_server");
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("{} starts (./scripts/deps installs it): {e}", bin.display())
            });
        let moto = Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "moto_server did not listen"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    /// The `AWS_*` settings of an assay process that uses this server.
    fn env(&self) -> Vec<(&'static str, &str)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
        ]
    }

    /// The same settings by `object_store`'s names, as `serve`'s `[s3]` table holds them.
    fn settings_table(&self) -> Vec<(&'static str, &str)> {
        let names = [
            "endpoint",
            "allow_http",
            "region",
            "access_key_id",
            "secret_access_key",
        ];
        names
            .into_iter()
            .zip(self.env())
            .map(|(n, (_, v))| (n, v))
            .collect()
    }

    /// The same settings, for this test's own S3 clients (nothing process-wide: each
    /// test talks to its own server).
    fn settings(&self) -> s3::S3Settings {
        s3::S3Settings::parse(self.settings_table()).unwrap()
    }

    /// Creates a bucket with a plain `PUT /bucket` (moto takes it unsigned).
    fn create_bucket(&self, bucket: &str) {
        let host = self.endpoint.trim_start_matches("http://");
        let mut stream = TcpStream::connect(host).unwrap();
        write!(
            stream,
            "PUT /{bucket} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `assay` with the server's settings; it must succeed. Returns stdout.
fn assay_s3(moto: &Moto, args: &[&str]) -> String {
    let (ok, stdout, stderr) = assay_env(args, &moto.env());
    assert!(ok, "assay {args:?} failed:\n{stderr}\n{stdout}");
    stdout
}

/// What comparing two datasets looks at: every column of the decisions but the run's
/// id and time, the rollup's totals, and the event count.
fn fingerprint(moto: &Moto, data: &str) -> Vec<String> {
    [
        "SELECT style_id, market, verdict, reasons, units_sold, units_received, on_hand, \
         exposure_days, p_keep, p_drop, rate_shape, rate_rate, projected_st_p50, reorder_units \
         FROM decisions ORDER BY style_id, market",
        "SELECT count(*) AS days, sum(units) AS units, sum(views) AS views, \
         sum(exposure_us) AS exposure FROM style_daily",
        "SELECT count(*) AS events FROM events",
    ]
    .iter()
    .map(|sql| assay_s3(moto, &["sql", "--data", data, "--format", "csv", sql]))
    .collect()
}

#[tokio::test]
async fn a_dataset_on_s3_ingests_decides_serves_and_answers_sql_like_a_local_one() {
    let moto = Moto::start();
    moto.create_bucket("assay-e2e");
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/sample");
    let receipts = std::fs::read(sample.join("stock_receipts.parquet")).unwrap();
    let events: Vec<String> = walk(&sample.join("events"))
        .iter()
        .map(|p| path_str(p).to_string())
        .collect();

    // The same start on both: the sample's receipts, then its events and catalog
    // ingested as one batch. The S3 one is written by this process's own client.
    let local = tempfile::tempdir().unwrap();
    let local_data = path_str(local.path()).to_string();
    std::fs::write(local.path().join("stock_receipts.parquet"), &receipts).unwrap();
    let remote = "s3://assay-e2e/retail/launches";
    Storage::parse(remote, &moto.settings())
        .unwrap()
        .write("stock_receipts.parquet", receipts.into())
        .unwrap();

    let styles = path_str(&sample.join("styles.parquet")).to_string();
    let ingest = |data: &str| -> Value {
        let mut args = vec![
            "ingest",
            "--format",
            "events-parquet",
            "--data",
            data,
            "--styles",
            &styles,
            "--json",
        ];
        args.extend(events.iter().map(String::as_str));
        serde_json::from_str(&assay_s3(&moto, &args)).unwrap()
    };
    let (on_s3, on_disk) = (ingest(remote), ingest(&local_data));
    for field in ["events_added", "duplicates_dropped", "rejected", "days"] {
        assert_eq!(on_s3["ingest"][field], on_disk["ingest"][field], "{field}");
    }
    assert!(on_s3["ingest"]["events_added"].as_u64().unwrap() > 10_000);
    assert!(
        on_s3["rollup"]["rows_written"].as_u64().unwrap() > 0,
        "{on_s3}"
    );
    // The same batch again adds nothing: its summary is found in the bucket.
    assert_eq!(ingest(remote)["ingest"]["already_ingested"], true);

    // Everything the batch and the rollup wrote is in the bucket, and nothing
    // temporary is left.
    let storage = Storage::parse(remote, &moto.settings()).unwrap();
    let keys: Vec<String> = storage
        .list("")
        .unwrap()
        .into_iter()
        .map(|e| e.key)
        .collect();
    for wanted in ["styles.parquet", "rollup/CURRENT", "ingest/batches/"] {
        assert!(
            keys.iter().any(|k| k.starts_with(wanted)),
            "{wanted}: {keys:?}"
        );
    }
    assert!(keys.iter().any(|k| k.starts_with("events/event_date=")));
    assert!(
        !keys
            .iter()
            .any(|k| k.ends_with(".tmp") || k.contains("journal-")),
        "{keys:?}"
    );

    for data in [remote, local_data.as_str()] {
        assay_s3(&moto, &["decide", "--data", data, "--publish"]);
    }
    let (s3_rows, local_rows) = (fingerprint(&moto, remote), fingerprint(&moto, &local_data));
    assert_eq!(s3_rows, local_rows);
    let decisions = &s3_rows[0];
    assert!(decisions.lines().count() > 100, "{decisions}");
    assert!(decisions.contains(",keep,") && decisions.contains(",drop,"));
    assert!(
        storage
            .list("decisions")
            .unwrap()
            .iter()
            .filter(|e| e.key.ends_with(".parquet"))
            .count()
            == 1,
        "one run stored in the bucket"
    );

    // Ballista's tasks read the bucket through assay's object stores too.
    #[cfg(feature = "ballista")]
    {
        let funnel = |engine: &str, data: &str| {
            assay_s3(
                &moto,
                &[
                    "sql",
                    "--engine",
                    engine,
                    "--data",
                    data,
                    "--format",
                    "csv",
                    "SELECT * FROM style_funnel ORDER BY style_id, market",
                ],
            )
        };
        let on_ballista = funnel("ballista-standalone", remote);
        assert!(on_ballista.lines().count() > 100, "{on_ballista}");
        assert_eq!(on_ballista, funnel("local", &local_data));
    }

    // Served from the bucket: the same list as from the folder, and an override that
    // lands in the bucket, where another process reads it.
    let tokens = tempfile::tempdir().unwrap();
    let token_file = path_str(&tokens.path().join("tokens.json")).to_string();
    let token = assay_s3(
        &moto,
        &[
            "token",
            "create",
            "--data",
            remote,
            "--tokens",
            &token_file,
            "--role",
            "merchandiser",
            "--name",
            "mia",
        ],
    )
    .trim()
    .to_string();
    let env = moto.env();
    let s3_server = Server::start_env(remote, &["--tokens", &token_file], &env);
    let local_server = Server::start_env(&local_data, &["--tokens", &token_file], &env);
    let client = reqwest::Client::new();
    let list = |base: String| {
        let (client, token) = (client.clone(), token.clone());
        async move {
            let page = get_json(&client, &format!("{base}/v1/decisions?limit=1000"), &token).await;
            let rows: Vec<Value> = page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| {
                    json!([
                        d["style_id"],
                        d["market"],
                        d["verdict"],
                        d["p_keep"],
                        d["reorder_units"]
                    ])
                })
                .collect();
            rows
        }
    };
    let served = list(s3_server.base.clone()).await;
    assert!(served.len() > 100);
    assert_eq!(served, list(local_server.base.clone()).await);

    let style = served[0][0].as_str().unwrap().to_string();
    let created = client
        .post(format!("{}/v1/styles/{style}/overrides", s3_server.base))
        .bearer_auth(&token)
        .json(&json!({"verdict": "drop", "reason": "quality_issue"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    s3_server.stop();
    assert_eq!(storage.list("overrides").unwrap().len(), 1);
    let logged = assay_s3(
        &moto,
        &[
            "sql",
            "--data",
            remote,
            "--format",
            "csv",
            "SELECT style_id, verdict, \"user\" FROM overrides",
        ],
    );
    assert!(logged.contains(&format!("{style},drop,mia")), "{logged}");
}

#[tokio::test]
async fn a_watched_prefix_on_s3_is_taken_in_and_marked() {
    let moto = Moto::start();
    moto.create_bucket("assay-landing");
    let data = crate::server::sample_copy();
    let admin = crate::server::token(data.path(), "admin", "ops");
    let landing = Storage::parse("s3://assay-landing/drops", &moto.settings()).unwrap();
    // The server's S3 settings come from its config file's [s3] table, not `AWS_*`.
    let config = data.path().join("assay.toml");
    let table: String = moto
        .settings_table()
        .iter()
        .map(|(name, value)| format!("{name} = \"{value}\"\n"))
        .collect();
    std::fs::write(&config, format!("[s3]\n{table}")).unwrap();
    let server = Server::start_with(
        data.path(),
        &[
            "--config",
            path_str(&config),
            "--watch",
            "s3://assay-landing/drops",
            "--watch-format",
            "events-csv",
            "--watch-interval-secs",
            "1",
        ],
    );
    // Three new events of a style the sample has.
    let client = reqwest::Client::new();
    let style = get_json(
        &client,
        &format!("{}/v1/decisions?market=US&limit=1", server.base),
        &admin,
    )
    .await["items"][0]["style_id"]
        .as_str()
        .unwrap()
        .to_string();
    // A time inside the sample's last day.
    let at = "2026-09-28T12:00:00Z";
    let csv: String = std::iter::once(
        "event_id,event_time,event_type,style_id,sku_id,size,user_id,session_id,order_id,quantity,price,market,channel,return_reason\n"
            .to_string(),
    )
    .chain((1..=3).map(|i| format!("watch-{i},{at},view,{style},,,u{i},s{i},,1,20.0,US,app,\n")))
    .collect();
    landing.write("day.csv", csv.into_bytes().into()).unwrap();

    let started = Instant::now();
    let job = loop {
        let jobs = get_json(
            &client,
            &format!("{}/v1/jobs?kind=ingest", server.base),
            &admin,
        )
        .await;
        if let Some(job) = jobs["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["status"] != "running")
        {
            break job.clone();
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no ingest job");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(job["status"], "succeeded", "{job:#}");
    assert_eq!(job["rows"], 3, "{job:#}");
    assert!(
        job["source"].as_str().unwrap() == "s3://assay-landing/drops/day.csv",
        "{job:#}"
    );
    let keys: Vec<String> = landing
        .list("")
        .unwrap()
        .into_iter()
        .map(|e| e.key)
        .collect();
    assert_eq!(
        keys,
        ["processed/day.csv"],
        "taken files move to processed/"
    );
    server.stop();
}
