//! The daily loop of the real `assay serve`: files dropped in a watched folder are
//! ingested once, a bad one is set aside as a failed job, decisions follow on their own
//! and on schedule, and the change feed says what buying systems must act on.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::server::{Server, get_json, token};
use crate::support::{assay_ok, path_str, shared_dataset};

const COLUMNS: &str = "event_id, event_time, event_type, style_id, sku_id, size, user_id, \
                       session_id, order_id, quantity, price, market, channel, return_reason";

/// The shared dataset's events of the days `filter` picks, as canonical CSV.
fn export(to: &Path, filter: &str) -> PathBuf {
    let out = assay_ok(&[
        "sql",
        "--data",
        path_str(shared_dataset()),
        "--format",
        "csv",
        &format!("SELECT {COLUMNS} FROM events WHERE {filter} ORDER BY event_time"),
    ]);
    std::fs::write(to, out).unwrap();
    to.to_path_buf()
}

fn scalar(data: &Path, sql: &str) -> String {
    let out = assay_ok(&["sql", "--data", path_str(data), "--format", "csv", sql]);
    out.lines().nth(1).unwrap_or_default().to_string()
}

/// Polls `GET /v1/jobs?…` until `done` holds for its jobs; they are returned.
async fn wait_for_jobs(
    client: &reqwest::Client,
    base: &str,
    admin: &str,
    what: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let page = get_json(client, &format!("{base}/v1/jobs?limit=500"), admin).await;
        let jobs = page["jobs"].as_array().unwrap().clone();
        if done(&jobs) {
            return jobs;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "{what}: not within 120 s; jobs: {jobs:#?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn of<'a>(jobs: &'a [Value], kind: &str, trigger: &str) -> Vec<&'a Value> {
    jobs.iter()
        .filter(|j| j["kind"] == kind && j["trigger"] == trigger)
        .collect()
}

#[tokio::test]
async fn dropped_files_are_ingested_once_a_bad_one_is_set_aside_and_runs_follow() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("ds");
    let landing = tmp.path().join("landing");
    std::fs::create_dir_all(&data).unwrap();
    for f in ["styles.parquet", "stock_receipts.parquet"] {
        std::fs::copy(shared_dataset().join(f), data.join(f)).unwrap();
    }
    let last_day = scalar(
        shared_dataset(),
        "SELECT CAST(max(event_date) AS VARCHAR) FROM events",
    );
    let first = export(
        &tmp.path().join("history.csv"),
        &format!("event_date < DATE '{last_day}' - INTERVAL '1 day'"),
    );
    assay_ok(&[
        "ingest",
        "--format",
        "events-csv",
        "--data",
        path_str(&data),
        path_str(&first),
    ]);
    let day1 = export(
        &tmp.path().join("day1.csv"),
        &format!("event_date = DATE '{last_day}' - INTERVAL '1 day'"),
    );
    let day1_events: u64 = std::fs::read_to_string(&day1).unwrap().lines().count() as u64 - 1;
    let before = scalar(&data, "SELECT count(*) FROM events");

    let admin = token(&data, "admin", "ops");
    let viewer = token(&data, "viewer", "vic");
    let merch = token(&data, "merchandiser", "mia");
    // Scheduled a minute ago: the loop owes today's run at once.
    let due = (chrono::Utc::now() - chrono::Duration::minutes(1))
        .format("%H:%M")
        .to_string();
    let flags = [
        "--watch",
        path_str(&landing),
        "--watch-format",
        "events-csv",
        "--watch-interval-secs",
        "1",
        "--decide-after-ingest",
        "--decide-at",
        &due,
        "--tz",
        "UTC",
    ];
    let server = Server::start_with(&data, &flags);
    let base = server.base.clone();
    let client = reqwest::Client::new();

    let jobs = wait_for_jobs(&client, &base, &admin, "the scheduled run", |jobs| {
        of(jobs, "decide", "schedule")
            .iter()
            .any(|j| j["status"] == "succeeded")
    })
    .await;
    let start_run = get_json(&client, &format!("{base}/v1/runs"), &admin).await["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["published"] == true)
        .unwrap()["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        of(&jobs, "decide", "schedule")[0]["run_id"],
        start_run,
        "the scheduled run is the one served"
    );

    // A viewer may not read the jobs: they name files and errors.
    let refused = client
        .get(format!("{base}/v1/jobs"))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);

    // One day's file, then the same bytes again, then a file that is not the format.
    std::fs::copy(&day1, landing.join("day1.csv")).unwrap();
    let jobs = wait_for_jobs(&client, &base, &admin, "the run after day 1", |jobs| {
        of(jobs, "decide", "after-ingest")
            .iter()
            .any(|j| j["status"] == "succeeded")
    })
    .await;
    let ingest = of(&jobs, "ingest", "watch")[0];
    assert_eq!(ingest["status"], "succeeded", "{ingest:#}");
    assert_eq!(ingest["rows"].as_u64(), Some(day1_events), "{ingest:#}");
    assert!(ingest["source"].as_str().unwrap().ends_with("day1.csv"));
    assert!(landing.join("processed/day1.csv").exists());
    assert!(!landing.join("day1.csv").exists());
    let rollup = of(&jobs, "rollup", "after-ingest")[0];
    assert_eq!(rollup["status"], "succeeded", "{rollup:#}");
    let run_id = of(&jobs, "decide", "after-ingest")[0]["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let run = get_json(&client, &format!("{base}/v1/runs/{run_id}"), &admin).await;
    assert_eq!(run["published"], true);
    assert!(
        run["as_of"].as_str().unwrap().starts_with(
            &chrono::NaiveDate::parse_from_str(&last_day, "%Y-%m-%d")
                .unwrap()
                .pred_opt()
                .unwrap()
                .to_string()
        ),
        "the run is as of the new day: {run:#}"
    );

    std::fs::copy(&day1, landing.join("day1-again.csv")).unwrap();
    std::fs::write(landing.join("broken.csv"), "this,is,not\nan,events,file\n").unwrap();
    let jobs = wait_for_jobs(
        &client,
        &base,
        &admin,
        "the repeat and the bad file",
        |jobs| {
            let ingests = of(jobs, "ingest", "watch");
            ingests.len() == 3 && ingests.iter().all(|j| j["status"] != "running")
        },
    )
    .await;
    let ingests = of(&jobs, "ingest", "watch");
    let again = ingests
        .iter()
        .find(|j| j["source"].as_str().unwrap().ends_with("day1-again.csv"))
        .unwrap();
    assert_eq!(again["status"], "succeeded");
    assert_eq!(again["rows"].as_u64(), Some(0), "{again:#}");
    assert!(
        again["note"].as_str().unwrap().contains("already ingested"),
        "{again:#}"
    );
    let broken = ingests
        .iter()
        .find(|j| j["source"].as_str().unwrap().ends_with("broken.csv"))
        .unwrap();
    assert_eq!(broken["status"], "failed");
    let error = broken["error"].as_str().unwrap();
    assert!(
        error.contains("broken.csv") && error.contains("set aside"),
        "{error}"
    );
    assert!(landing.join("failed/broken.csv").exists());
    let why = std::fs::read_to_string(landing.join("failed/broken.csv.error.txt")).unwrap();
    assert!(why.contains("event_id") || why.contains("column"), "{why}");
    assert_eq!(
        of(&jobs, "decide", "after-ingest").len(),
        1,
        "nothing new was added: no new run"
    );
    let one = get_json(
        &client,
        &format!("{base}/v1/jobs/{}", broken["job_id"].as_str().unwrap()),
        &admin,
    )
    .await;
    assert_eq!(one["status"], "failed");
    let failed_only = get_json(&client, &format!("{base}/v1/jobs?status=failed"), &admin).await;
    assert_eq!(failed_only["jobs"].as_array().unwrap().len(), 1);
    let bad_filter = client
        .get(format!("{base}/v1/jobs?kind=reboot"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(bad_filter.status(), 400);

    let metrics = client
        .get(format!("{base}/metrics"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [
        "assay_jobs_total{kind=\"ingest\",status=\"failed\"} 1",
        "assay_job_duration_seconds_bucket{kind=\"decide\"",
        "assay_job_seconds_since_success{kind=\"rollup\"}",
    ] {
        assert!(metrics.contains(needle), "{needle} in\n{metrics}");
    }

    // The change feed since the scheduled run: every item's `after` is what the
    // decision list serves now; an override shows up as such.
    let feed = get_json(
        &client,
        &format!("{base}/v1/changes?since={start_run}"),
        &merch,
    )
    .await;
    assert_eq!(feed["run_id"], run_id);
    let items = feed["items"].as_array().unwrap();
    println!("change feed since the scheduled run: {} rows", items.len());
    for item in items {
        assert_ne!(item["before"], item["after"], "{item:#}");
    }
    let served = get_json(
        &client,
        &format!("{base}/v1/decisions?market=ALL&verdict=keep&limit=1"),
        &merch,
    )
    .await;
    let style = served["items"][0]["style_id"].as_str().unwrap().to_string();
    let created = client
        .post(format!("{base}/v1/styles/{style}/overrides"))
        .bearer_auth(&merch)
        .json(&json!({"verdict": "drop", "reason": "quality_issue"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let feed = get_json(
        &client,
        &format!("{base}/v1/changes?since={run_id}&market=ALL"),
        &merch,
    )
    .await;
    let items = feed["items"].as_array().unwrap();
    assert_eq!(
        items.len(),
        1,
        "only the override changed since: {items:#?}"
    );
    assert_eq!(items[0]["style_id"], style.as_str());
    assert_eq!(items[0]["cause"], "override");
    assert_eq!(items[0]["before"]["verdict"], "keep");
    assert_eq!(items[0]["after"]["verdict"], "drop");
    assert_eq!(items[0]["after"]["reorder_units"], 0);
    let missing = client
        .get(format!("{base}/v1/changes?since=no-such-run"))
        .bearer_auth(&merch)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    server.stop();

    // Events were added once; after a restart the jobs are still there, nothing is
    // taken again, and today's scheduled run is not run twice.
    let after: u64 = scalar(&data, "SELECT count(*) FROM events")
        .parse()
        .unwrap();
    assert_eq!(after, before.parse::<u64>().unwrap() + day1_events);
    let server = Server::start_with(&data, &flags);
    let base = server.base.clone();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let jobs = get_json(&client, &format!("{base}/v1/jobs?limit=500"), &admin).await;
    let jobs = jobs["jobs"].as_array().unwrap();
    assert_eq!(of(jobs, "ingest", "watch").len(), 3, "{jobs:#?}");
    assert_eq!(of(jobs, "decide", "schedule").len(), 1, "{jobs:#?}");
    server.stop();
}
