//! The delivery task: every due (subscriber, event) pair is POSTed, and the attempt is
//! recorded before the next; a 2xx answer delivers, anything else is retried with
//! exponential backoff and jitter until the event is too old.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::Notify;

use assay_engine::store::webhooks::{
    Attempt, Delivery, DeliveryState, Event, Subscription, WebhookStore,
};

use super::RetryPolicy;
use super::sign::signature;

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// How often the task looks for retries that came due, when nothing wakes it.
const LOOK_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

pub async fn run(store: Arc<WebhookStore>, wake: Arc<Notify>, retry: RetryPolicy) {
    let client = match client() {
        Ok(client) => client,
        Err(e) => {
            tracing::error!("webhook deliveries are off: no TLS client: {e}");
            return;
        }
    };
    loop {
        for (sub, seq, event) in store.due(Utc::now()) {
            attempt(&client, &store, &sub, seq, &event, retry).await;
        }
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(LOOK_EVERY) => {}
        }
    }
}

fn client() -> std::io::Result<HttpsClient> {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()?
        .https_or_http()
        .enable_http1()
        .build();
    Ok(Client::builder(TokioExecutor::new()).build(https))
}

/// The JSON a subscriber receives.
fn body(seq: u64, event: &Event) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "event_id": event.event_id,
        "type": event.event_type.as_str(),
        "created_at": event.created_at,
        "seq": seq,
        "data": event.data,
    }))
    .expect("JSON values serialize")
}

async fn attempt(
    client: &HttpsClient,
    store: &WebhookStore,
    sub: &Subscription,
    seq: u64,
    event: &Event,
    retry: RetryPolicy,
) {
    let body = body(seq, event);
    let timestamp = Utc::now().timestamp();
    let started = Instant::now();
    let outcome = match request(sub, event, timestamp, body) {
        Ok(request) => match tokio::time::timeout(retry.timeout, client.request(request)).await {
            Ok(Ok(response)) => (Some(response.status().as_u16()), None),
            Ok(Err(e)) => (None, Some(error_chain(&e))),
            Err(_) => (None, Some(format!("no answer within {:?}", retry.timeout))),
        },
        Err(e) => (None, Some(e)),
    };
    let now = Utc::now();
    let mut delivery = store.delivery(&sub.webhook_id, seq).unwrap_or(Delivery {
        webhook_id: sub.webhook_id.clone(),
        seq,
        event_id: event.event_id.clone(),
        event_type: event.event_type,
        state: DeliveryState::Pending,
        attempts: Vec::new(),
        next_attempt_at: None,
    });
    let (status_code, error) = outcome;
    let ok = status_code.is_some_and(|s| (200..300).contains(&s));
    delivery.attempts.push(Attempt {
        at: now,
        status_code,
        error: if ok || error.is_some() {
            error
        } else {
            Some(format!("answered {}", status_code.unwrap_or_default()))
        },
        seconds: started.elapsed().as_secs_f64(),
    });
    if ok {
        delivery.state = DeliveryState::Delivered;
        delivery.next_attempt_at = None;
        metrics::histogram!("assay_webhook_delivery_latency_seconds")
            .record(seconds_since(event.created_at, now));
    } else if seconds_since(event.created_at, now) > retry.give_up_after.as_secs_f64() {
        delivery.state = DeliveryState::GaveUp;
        delivery.next_attempt_at = None;
    } else {
        delivery.next_attempt_at = Some(now + backoff(delivery.attempts.len(), retry));
    }
    let state = match delivery.state {
        DeliveryState::Delivered => "delivered",
        DeliveryState::GaveUp => "gave_up",
        DeliveryState::Pending => "retrying",
    };
    metrics::counter!("assay_webhook_attempts_total", "outcome" => state).increment(1);
    if let Err(e) = store.record(&delivery) {
        // Unrecorded, the attempt is made again: at least once, never lost.
        tracing::warn!(webhook_id = %sub.webhook_id, seq, "recording a delivery: {e}");
    }
}

fn request(
    sub: &Subscription,
    event: &Event,
    timestamp: i64,
    body: Vec<u8>,
) -> Result<hyper::Request<Full<Bytes>>, String> {
    hyper::Request::post(&sub.url)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(
            hyper::header::USER_AGENT,
            concat!("assay-webhooks/", env!("CARGO_PKG_VERSION")),
        )
        .header("x-assay-event", event.event_type.as_str())
        .header("x-assay-event-id", &event.event_id)
        .header("x-assay-timestamp", timestamp.to_string())
        .header(
            "x-assay-signature",
            signature(&sub.secret, timestamp, &body),
        )
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| format!("building the request to {}: {e}", sub.url))
}

/// The delay before retry `n` (1 = the first): doubling from the first delay up to the
/// cap, then a random half to all of it, so many failed deliveries do not come back
/// at the same moment.
fn backoff(n: usize, retry: RetryPolicy) -> chrono::Duration {
    let doubled = (retry.first_delay.as_secs_f64() * 2f64.powi(n.saturating_sub(1).min(30) as i32))
        .min(retry.max_delay.as_secs_f64());
    let jittered = doubled * (0.5 + rand::random::<f64>() * 0.5);
    chrono::Duration::milliseconds((jittered * 1000.0) as i64)
}

fn seconds_since(t: DateTime<Utc>, now: DateTime<Utc>) -> f64 {
    (now - t).num_milliseconds() as f64 / 1000.0
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap_with_jitter_below_it() {
        let retry = RetryPolicy::default();
        for (n, full) in [(1, 1.0), (2, 2.0), (5, 16.0), (20, 300.0)] {
            let ms = backoff(n, retry).num_milliseconds() as f64 / 1000.0;
            assert!(
                ms >= full * 0.5 - 0.001 && ms <= full + 0.001,
                "retry {n}: {ms}"
            );
        }
    }
}
