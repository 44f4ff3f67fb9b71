//! Webhooks from the real `assay serve` to a real HTTP receiver started by the test:
//! signed deliveries, retries after a 500, and every acknowledged override delivered
//! after the server is killed with SIGKILL mid-write.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::server::{Server, get_json, sample_copy, token};

const SECRET: &str = "a-receivers-secret-of-some-length";

/// What the receiver got: every request, and how many to refuse with 500 first.
#[derive(Default)]
struct Inbox {
    received: Mutex<Vec<(HeaderMap, Value)>>,
    refuse_first: AtomicUsize,
}

async fn receive(State(inbox): State<Arc<Inbox>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let refuse = inbox
        .refuse_first
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if refuse {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    // The signature is over `<timestamp>.<body>` with the shared secret.
    let timestamp = headers["x-assay-timestamp"].to_str().unwrap().to_string();
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(&body);
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let signature = headers["x-assay-signature"].to_str().unwrap();
    assert_eq!(
        signature,
        format!("sha256={expected}"),
        "signature verifies"
    );
    let age = chrono::Utc::now().timestamp() - timestamp.parse::<i64>().unwrap();
    assert!(age.abs() < 300, "fresh timestamp");
    let value: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        headers["x-assay-event-id"].to_str().unwrap(),
        value["event_id"].as_str().unwrap()
    );
    inbox.received.lock().unwrap().push((headers, value));
    StatusCode::OK
}

async fn start_receiver() -> (String, Arc<Inbox>) {
    let inbox = Arc::new(Inbox::default());
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(Arc::clone(&inbox));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, inbox)
}

fn events(inbox: &Inbox) -> Vec<Value> {
    inbox
        .received
        .lock()
        .unwrap()
        .iter()
        .map(|(_, v)| v.clone())
        .collect()
}

async fn wait_until(what: &str, seconds: u64, done: impl Fn() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < Duration::from_secs(seconds),
            "{what}: not within {seconds} s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_are_signed_retried_and_survive_sigkill() {
    let tmp = sample_copy();
    let admin = token(tmp.path(), "admin", "ops");
    let mia = token(tmp.path(), "merchandiser", "mia");
    let (url, inbox) = start_receiver().await;
    let client = reqwest::Client::new();
    let server = Server::start(tmp.path());
    let base = server.base.clone();

    // Only admins subscribe; a bad URL or event is named.
    for (who, body, status) in [
        (&mia, json!({"url": url, "events": ["run.completed"]}), 403),
        (
            &admin,
            json!({"url": "ftp://x/y", "events": ["run.completed"]}),
            422,
        ),
        (&admin, json!({"url": url, "events": ["run.deleted"]}), 422),
    ] {
        let r = client
            .post(format!("{base}/v1/webhooks"))
            .bearer_auth(who)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{body}");
    }
    let created: Value = client
        .post(format!("{base}/v1/webhooks"))
        .bearer_auth(&admin)
        .json(&json!({
            "url": url,
            "events": ["run.completed", "decision.changed", "override.created"],
            "secret": SECRET,
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let webhook = created["webhook_id"].as_str().unwrap().to_string();
    assert_eq!(created["secret"], SECRET);
    let listed = get_json(&client, &format!("{base}/v1/webhooks"), &admin).await;
    assert!(listed["webhooks"][0].get("secret").is_none(), "{listed}");

    // The receiver refuses the first two deliveries: they are retried.
    inbox.refuse_first.store(2, Ordering::SeqCst);
    let newest = get_json(&client, &format!("{base}/v1/runs"), &admin).await["runs"][0]["as_of"]
        .as_str()
        .unwrap()
        .to_string();
    let earlier =
        chrono::DateTime::parse_from_rfc3339(&newest).unwrap() - chrono::Duration::days(4);
    let run: Value = client
        .post(format!("{base}/v1/runs"))
        .bearer_auth(&admin)
        .json(&json!({"as_of": earlier.to_rfc3339(), "publish": true}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let run_id = run["run_id"].as_str().unwrap().to_string();
    wait_until("run.completed and decision.changed delivered", 60, || {
        let got = events(&inbox);
        ["run.completed", "decision.changed"].iter().all(|t| {
            got.iter()
                .any(|e| e["type"] == *t && e["data"]["run_id"] == run_id.as_str())
        })
    })
    .await;
    let got = events(&inbox);
    let changed = got
        .iter()
        .find(|e| e["type"] == "decision.changed")
        .unwrap();
    let items = changed["data"]["items"].as_array().unwrap();
    assert!(!items.is_empty());
    for item in items {
        assert_ne!(item["before"], item["after"], "{item}");
    }
    let deliveries = get_json(
        &client,
        &format!("{base}/v1/webhooks/{webhook}/deliveries"),
        &admin,
    )
    .await;
    let attempts: Vec<Option<u64>> = deliveries["items"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|d| d["attempts"].as_array().unwrap().clone())
        .map(|a| a["status_code"].as_u64())
        .collect();
    assert_eq!(
        attempts.iter().filter(|s| **s == Some(500)).count(),
        2,
        "two refused attempts recorded: {deliveries:#}"
    );
    assert!(
        deliveries["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["state"] == "delivered"),
        "{deliveries:#}"
    );

    // SIGKILL while merchandisers override: every acknowledged override is delivered
    // after a restart, and one event id stands for one override however often sent.
    let styles: Vec<String> = get_json(
        &client,
        &format!("{base}/v1/decisions?market=ALL&limit=40"),
        &mia,
    )
    .await["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["style_id"].as_str().unwrap().to_string())
        .collect();
    let acknowledged = Arc::new(Mutex::new(BTreeSet::new()));
    let mut server = server;
    for round in 0..4u64 {
        let base = server.base.clone();
        let mut writers = Vec::new();
        for w in 0..4usize {
            let (client, base, mia, acknowledged) = (
                client.clone(),
                base.clone(),
                mia.clone(),
                Arc::clone(&acknowledged),
            );
            let styles = styles.clone();
            writers.push(tokio::spawn(async move {
                for i in 0.. {
                    let style = &styles[(w * 7 + i) % styles.len()];
                    let Ok(r) = client
                        .post(format!("{base}/v1/styles/{style}/overrides"))
                        .bearer_auth(&mia)
                        .json(&json!({"verdict": "drop", "reason": "quality_issue"}))
                        .send()
                        .await
                    else {
                        return;
                    };
                    if r.status() != 201 {
                        return;
                    }
                    let Ok(body) = r.json::<Value>().await else {
                        return;
                    };
                    acknowledged
                        .lock()
                        .unwrap()
                        .insert(body["override_id"].as_str().unwrap().to_string());
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(300 + 150 * round)).await;
        drop(server); // SIGKILL
        for w in writers {
            let _ = w.await;
        }
        server = Server::start(tmp.path());
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() > 10,
        "{} overrides acknowledged",
        acknowledged.len()
    );
    wait_until("every acknowledged override delivered", 120, || {
        let delivered: BTreeSet<String> = events(&inbox)
            .iter()
            .filter(|e| e["type"] == "override.created")
            .map(|e| e["data"]["override_id"].as_str().unwrap().to_string())
            .collect();
        acknowledged.is_subset(&delivered)
    })
    .await;
    let mut ids: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for e in events(&inbox) {
        if e["type"] == "override.created" {
            ids.entry(e["data"]["override_id"].as_str().unwrap().to_string())
                .or_default()
                .insert(e["event_id"].as_str().unwrap().to_string());
        }
    }
    assert!(
        ids.values().all(|events| events.len() == 1),
        "one event id per override"
    );
    println!(
        "webhooks: {} overrides acknowledged across 4 SIGKILLs, all {} delivered ({} deliveries received in all)",
        acknowledged.len(),
        acknowledged.len(),
        events(&inbox).len()
    );
    server.stop();
}
