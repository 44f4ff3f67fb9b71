//! The real `assay serve` on 127.0.0.1:0, driven by a real HTTP client.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{assay_ok, copy_inputs, path_str};

/// A running server process.
pub struct Server {
    child: Child,
    pub base: String,
    /// `host:port` of the PostgreSQL wire protocol, when started with `--pg-listen`.
    pub pg: Option<String>,
    /// `grpc://host:port` of Arrow Flight SQL, when started with `--flight-listen`.
    pub flight: Option<String>,
}

impl Server {
    pub fn start(data: &Path) -> Self {
        Self::start_with(data, &[])
    }

    /// Starts `assay serve` on the dataset with extra flags.
    pub fn start_with(data: &Path, extra: &[&str]) -> Self {
        Self::start_env(path_str(data), extra, &[])
    }

    /// Starts `assay serve` on a dataset (a folder or a URL) with extra flags and
    /// environment variables.
    pub fn start_env(data: &str, extra: &[&str], env: &[(&str, &str)]) -> Self {
        Self::spawn(Command::new(env!("CARGO_BIN_EXE_assay")), data, extra, env)
    }

    /// Starts `assay serve` with its address space limited to `kib` (`ulimit -v`): an
    /// allocation past what the limits promise then fails the test instead of
    /// exhausting the machine.
    pub fn start_limited(data: &Path, extra: &[&str], kib: u64) -> Self {
        let mut shell = Command::new("sh");
        shell.args([
            "-c",
            &format!("ulimit -v {kib} && exec \"$0\" \"$@\""),
            env!("CARGO_BIN_EXE_assay"),
        ]);
        Self::spawn(shell, path_str(data), extra, &[])
    }

    fn spawn(mut command: Command, data: &str, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = command
            .args(["serve", "--data", data, "--listen", "127.0.0.1:0"])
            .args(extra)
            .envs(env.iter().copied())
            .env_remove("ASSAY_DATA")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("assay serve starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // The pgwire and Flight lines, if any, come before the HTTP one.
            let (mut pg, mut flight) = (None, None);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("assay pgwire listening on ") {
                    pg = Some(addr.to_string());
                }
                if let Some(addr) = line.strip_prefix("assay flight listening on ") {
                    flight = Some(addr.to_string());
                }
                if let Some(addr) = line.strip_prefix("assay listening on ") {
                    let _ = tx.send((addr.to_string(), pg.take(), flight.take()));
                }
            }
        });
        let Ok((base, pg, flight)) = rx.recv_timeout(Duration::from_secs(120)) else {
            // Not left running behind a failed test.
            let _ = child.kill();
            let _ = child.wait();
            panic!("the server did not report its address within 120 s");
        };
        Self {
            child,
            base,
            pg,
            flight,
        }
    }

    fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {signal}");
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn stop(mut self) {
        self.signal("-TERM");
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "graceful shutdown exits 0, got {status}");
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn sample_copy() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    copy_inputs(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/sample"),
        tmp.path(),
    );
    tmp
}

pub fn token(data: &Path, role: &str, name: &str) -> String {
    assay_ok(&[
        "token",
        "create",
        "--data",
        path_str(data),
        "--role",
        role,
        "--name",
        name,
    ])
    .trim()
    .to_string()
}

pub async fn get_json(client: &reqwest::Client, url: &str, token: &str) -> Value {
    let r = client.get(url).bearer_auth(token).send().await.unwrap();
    assert!(r.status().is_success(), "GET {url}: {}", r.status());
    r.json().await.unwrap()
}

/// /readyz as an operator (an admin's token) sees it, or as anyone does.
async fn readyz(client: &reqwest::Client, base: &str, token: Option<&str>) -> Value {
    let mut r = client.get(format!("{base}/readyz"));
    if let Some(token) = token {
        r = r.bearer_auth(token);
    }
    r.send().await.unwrap().json().await.unwrap()
}

/// The pooled row of a style: (model verdict, effective verdict).
async fn verdicts(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    style: &str,
) -> (String, String) {
    let s = get_json(client, &format!("{base}/v1/styles/{style}"), token).await;
    let pooled = &s["decisions"][0];
    (
        pooled["model_verdict"].as_str().unwrap().into(),
        pooled["verdict"].as_str().unwrap().into(),
    )
}

#[tokio::test]
async fn an_override_survives_a_restart_and_revoking_it_restores_the_model() {
    let tmp = sample_copy();
    let mia = token(tmp.path(), "merchandiser", "mia");
    let client = reqwest::Client::new();
    let server = Server::start(tmp.path());
    let base = server.base.clone();

    let keeps = get_json(
        &client,
        &format!("{base}/v1/decisions?market=ALL&verdict=keep&limit=1"),
        &mia,
    )
    .await;
    let style = keeps["items"][0]["style_id"].as_str().unwrap().to_string();
    assert_eq!(
        verdicts(&client, &base, &mia, &style).await,
        ("keep".into(), "keep".into())
    );

    let created = client
        .post(format!("{base}/v1/styles/{style}/overrides"))
        .bearer_auth(&mia)
        .json(&json!({"verdict": "drop", "reason": "supplier_constraint", "comment": "factory closed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let id = created.json::<Value>().await.unwrap()["override_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        verdicts(&client, &base, &mia, &style).await,
        ("keep".into(), "drop".into())
    );

    server.stop();
    let server = Server::start(tmp.path());
    let base = server.base.clone();
    assert_eq!(
        verdicts(&client, &base, &mia, &style).await,
        ("keep".into(), "drop".into()),
        "the override survived the restart"
    );

    let revoked = client
        .delete(format!("{base}/v1/overrides/{id}"))
        .bearer_auth(&mia)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    assert_eq!(
        verdicts(&client, &base, &mia, &style).await,
        ("keep".into(), "keep".into())
    );
    let history = get_json(
        &client,
        &format!("{base}/v1/styles/{style}/overrides"),
        &mia,
    )
    .await;
    assert_eq!(
        history["items"][0]["revoked_by"], "mia",
        "revoked, never erased"
    );
    server.stop();

    // The same record is a table for analysts.
    let csv = assay_ok(&[
        "sql",
        "--data",
        path_str(tmp.path()),
        "--format",
        "csv",
        &format!(
            "SELECT style_id, verdict, reason, \"user\", revoked_by FROM overrides WHERE style_id = '{style}'"
        ),
    ]);
    assert_eq!(
        csv.lines().nth(1),
        Some(format!("{style},drop,supplier_constraint,mia,mia").as_str()),
        "{csv}"
    );
}

#[tokio::test]
async fn acknowledged_overrides_survive_sigkill_mid_write() {
    let tmp = sample_copy();
    let mia = token(tmp.path(), "merchandiser", "mia");
    let server = Server::start(tmp.path());
    let base = server.base.clone();
    let client = reqwest::Client::new();
    let page = get_json(
        &client,
        &format!("{base}/v1/decisions?market=ALL&limit=40"),
        &mia,
    )
    .await;
    let styles: Vec<String> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["style_id"].as_str().unwrap().to_string())
        .collect();

    // Four writers post overrides as fast as they can; each remembers what was acknowledged.
    let mut writers = Vec::new();
    for w in 0..4 {
        let (client, base, mia, styles) =
            (client.clone(), base.clone(), mia.clone(), styles.clone());
        writers.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0.. {
                let style = &styles[(w * 10 + i) % styles.len()];
                let sent = client
                    .post(format!("{base}/v1/styles/{style}/overrides"))
                    .bearer_auth(&mia)
                    .header("Idempotency-Key", format!("w{w}-{i}"))
                    .json(&json!({"verdict": "test", "reason": "trend_signal", "comment": format!("writer {w} #{i}")}))
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status() == 201 => {
                        let body: Value = match r.json().await {
                            Ok(b) => b,
                            Err(_) => break,
                        };
                        acked.push((style.clone(), body["override_id"].as_str().unwrap().to_string()));
                    }
                    _ => break,
                }
            }
            acked
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.signal("-KILL");
    let mut acked = Vec::new();
    for w in writers {
        acked.extend(w.await.unwrap());
    }
    drop(server);
    assert!(
        acked.len() >= 20,
        "too few writes before the kill to prove anything: {}",
        acked.len()
    );

    let server = Server::start(tmp.path());
    let base = server.base.clone();
    let mut found = std::collections::HashSet::new();
    for style in &styles {
        let history = get_json(
            &client,
            &format!("{base}/v1/styles/{style}/overrides"),
            &mia,
        )
        .await;
        for o in history["items"].as_array().unwrap() {
            assert!(
                o["comment"].as_str().unwrap().starts_with("writer "),
                "a whole entry: {o}"
            );
            found.insert(o["override_id"].as_str().unwrap().to_string());
        }
    }
    let missing: Vec<_> = acked.iter().filter(|(_, id)| !found.contains(id)).collect();
    println!(
        "crash test: {} overrides acknowledged before SIGKILL, {} on record after restart",
        acked.len(),
        found.len()
    );
    assert!(
        missing.is_empty(),
        "acknowledged overrides lost: {missing:?}"
    );
    server.stop();
}

/// An unreadable event file, present at start or arriving later, is set aside and
/// reported by /readyz; the server keeps answering from the rest.
#[tokio::test]
async fn unreadable_event_files_are_set_aside_and_the_rest_is_served() {
    let tmp = sample_copy();
    let data = tmp.path();
    let partition = data.join("events/event_date=2026-09-05");
    let good = std::fs::read(partition.join("part-0.parquet")).unwrap();
    std::fs::write(partition.join("broken.parquet"), &good[..good.len() / 2]).unwrap();
    let admin = token(data, "admin", "ops");
    let server = Server::start(data);
    let client = reqwest::Client::new();
    // The SCRAM secrets `token create` wrote are the owner's alone, after serve too.
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data.join(".assay/tokens.json")), 0o600);
    assert_eq!(mode(&data.join(".assay")), 0o700);

    // Anyone learns that a file was set aside; only an operator where and why.
    let open = readyz(&client, &server.base, None).await;
    assert_eq!(open["set_aside_count"], 1, "{open}");
    assert!(open.get("set_aside_files").is_none(), "{open}");
    let text = open.to_string();
    assert!(
        !text.contains(&*data.to_string_lossy()) && !text.contains("parquet"),
        "{open}"
    );
    let ready = readyz(&client, &server.base, Some(&admin)).await;
    assert_eq!(ready["status"], "ready", "{ready}");
    let files = ready["set_aside_files"].as_array().expect("reported");
    assert_eq!(files.len(), 1, "{ready}");
    assert!(
        files[0]["path"]
            .as_str()
            .unwrap()
            .ends_with("broken.parquet")
    );
    assert!(
        files[0]["problem"]
            .as_str()
            .unwrap()
            .contains("not a readable Parquet file")
    );
    assert!(Path::new(files[0]["moved_to"].as_str().unwrap()).is_file());
    assert!(!partition.join("broken.parquet").exists());
    let page = get_json(
        &client,
        &format!("{}/v1/decisions?limit=5", server.base),
        &admin,
    )
    .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 5);

    // A file with the wrong schema arrives while serving: the next run sets it aside.
    std::fs::copy(data.join("styles.parquet"), partition.join("late.parquet")).unwrap();
    let r = client
        .post(format!("{}/v1/runs", server.base))
        .bearer_auth(&admin)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_success(),
        "a run still completes: {}",
        r.status()
    );
    let ready = readyz(&client, &server.base, Some(&admin)).await;
    let files = ready["set_aside_files"].as_array().unwrap();
    assert_eq!(files.len(), 2, "{ready}");
    assert!(
        files[1]["problem"].as_str().unwrap().contains("event_id"),
        "{ready}"
    );
    server.stop();
}

/// The run `/readyz` names, once it is `want` (or whatever it is after `within`).
async fn served_run(base: &str, want: &str, within: Duration) -> String {
    // No pooled connection: one idle past the server's keep-alive limit could be
    // closed just as a poll reuses it.
    let client = &reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let started = Instant::now();
    loop {
        let served = readyz(client, base, None).await["run_id"]
            .as_str()
            .unwrap()
            .to_owned();
        if served == want || started.elapsed() > within {
            return served;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn experiments_are_not_served_and_a_published_run_is_before_and_after_a_restart() {
    let tmp = sample_copy();
    let data = tmp.path();
    let analyst = token(data, "analyst", "ana");
    let client = reqwest::Client::new();
    let server = Server::start(data);
    let first = readyz(&client, &server.base, None).await["run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let dir = data.to_str().unwrap();
    let policy = data.join("trial.toml");
    std::fs::write(&policy, "[defaults]\nplanned_life_days = 30\n").unwrap();
    // A look back and a trial policy: stored, not served.
    for extra in [
        &["--as-of", "2026-09-14"][..],
        &["--policy", policy.to_str().unwrap()][..],
    ] {
        let mut args = vec!["decide", "--data", dir];
        args.extend_from_slice(extra);
        let (ok, _, err) = crate::support::assay(&args);
        assert!(ok, "{err}");
        assert!(err.contains("stored, not published"), "{err}");
    }
    // Longer than the server's check for publications.
    let served = served_run(&server.base, "", Duration::from_secs(7)).await;
    assert_eq!(served, first);
    let r = client
        .get(format!("{}/v1/decisions?limit=1", server.base))
        .bearer_auth(&analyst)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-assay-run"], first.as_str());
    server.stop();

    let server = Server::start(data);
    assert_eq!(readyz(&client, &server.base, None).await["run_id"], first);
    // The future is refused, not decided from empty days.
    let (ok, _, err) = crate::support::assay(&["decide", "--data", dir, "--as-of", "2030-01-01"]);
    assert!(!ok && err.contains("after the newest event"), "{err}");
    // Published from the command line: the running server serves it within seconds.
    let (ok, _, err) = crate::support::assay(&["decide", "--data", dir, "--publish"]);
    assert!(ok, "{err}");
    let published = err
        .lines()
        .find(|l| l.contains("is published"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or_else(|| panic!("`Run <id> is published`: {err}"))
        .to_owned();
    let served = served_run(&server.base, &published, Duration::from_secs(15)).await;
    assert_eq!(served, published);
    let runs = crate::sql::sql(
        &client,
        &server.base,
        &analyst,
        "SELECT (SELECT count(DISTINCT run_id) FROM decisions) AS served, \
         (SELECT count(*) FROM decision_runs) AS stored, \
         (SELECT max(run_id) FROM decision_runs WHERE published) AS published",
        "application/json",
    )
    .await;
    let v: Value = runs.json().await.unwrap();
    assert_eq!(v["rows"][0]["served"], 1, "{v}");
    assert_eq!(v["rows"][0]["stored"], 4, "{v}");
    assert_eq!(v["rows"][0]["published"], published.as_str(), "{v}");
    server.stop();
}
