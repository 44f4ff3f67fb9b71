//! Router tests: every endpoint, status and error, through `oneshot` on the real router
//! over a copy of the bundled sample.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Method, Request, StatusCode, header};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::routes::{Limits, router};
use super::state::AppState;
use crate::auth::{Role, TokenStore};

struct Fixture {
    state: Arc<AppState>,
    tokens: HashMap<Role, String>,
    _dir: tempfile::TempDir,
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap();
        if name == "decisions" || name == "overrides" || name == ".assay" {
            continue;
        }
        if p.is_dir() {
            copy_dir(&p, &to.join(name));
        } else {
            std::fs::copy(&p, to.join(name)).unwrap();
        }
    }
}

/// A fresh app over a copy of the sample, built on its own runtime so any test's
/// runtime can use it.
fn build() -> Fixture {
    std::thread::spawn(|| {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/sample");
            copy_dir(&sample, dir.path());
            let engine = assay_engine::Engine::open(dir.path()).await.unwrap();
            let overrides = Arc::clone(engine.overrides());
            let tokens = TokenStore::open(dir.path().join("tokens.json")).unwrap();
            let mut by_role = HashMap::new();
            for role in [
                Role::Viewer,
                Role::Merchandiser,
                Role::Buyer,
                Role::Analyst,
                Role::Admin,
            ] {
                by_role.insert(role, tokens.create(role.as_str(), role).unwrap());
            }
            let jobs = assay_engine::store::jobs::JobStore::open(
                engine.dataset().storage.clone(),
                chrono::Utc::now(),
            )
            .unwrap();
            let webhooks = crate::webhooks::Webhooks::open(
                engine.dataset().storage.clone(),
                crate::webhooks::RetryPolicy::default(),
            )
            .unwrap();
            let state = Arc::new(AppState::new(
                Arc::new(engine),
                super::state::Records {
                    overrides,
                    tokens: Arc::new(tokens),
                    jobs,
                    webhooks: Arc::new(webhooks),
                },
                super::state::ReorderSettings::default(),
                assay_engine::decision::Policy::default(),
                super::metrics_handle().unwrap(),
                assay_engine::sandbox::SandboxLimits::default(),
            ));
            state.load_published().await.unwrap();
            Fixture {
                state,
                tokens: by_role,
                _dir: dir,
            }
        })
    })
    .join()
    .unwrap()
}

fn shared() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(build)
}

fn app(f: &Fixture) -> Router {
    router(Arc::clone(&f.state), Limits::default())
}

struct Answer {
    status: StatusCode,
    content_type: String,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).to_string()
    }
    /// An error answer must be a problem document with a detail.
    fn problem(&self, status: StatusCode) -> String {
        assert_eq!(self.status, status, "{}", self.text());
        assert_eq!(
            self.content_type,
            "application/problem+json",
            "{}",
            self.text()
        );
        let p = self.json();
        assert_eq!(p["status"], status.as_u16());
        p["detail"].as_str().unwrap().to_string()
    }
}

async fn call(
    f: &Fixture,
    method: Method,
    uri: &str,
    role: Option<Role>,
    body: Option<Value>,
    extra: &[(&str, &str)],
) -> Answer {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(role) = role {
        req = req.header(header::AUTHORIZATION, format!("Bearer {}", f.tokens[&role]));
    }
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let req = match body {
        Some(b) => req
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(b.to_string()))
            .unwrap(),
        None => req.body(Body::empty()).unwrap(),
    };
    let response = app(f).oneshot(req).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap()
        .to_vec();
    Answer {
        status,
        content_type,
        headers,
        body,
    }
}

async fn get(f: &Fixture, uri: &str, role: Option<Role>) -> Answer {
    call(f, Method::GET, uri, role, None, &[]).await
}

/// Pooled style ids of the sample with a given model verdict, for tests to pick from.
/// A style's rows as `GET /v1/styles/{id}` gives them: pooled first.
async fn decisions_of(f: &Fixture, id: &str) -> Vec<Value> {
    get(f, &format!("/v1/styles/{id}"), Some(Role::Viewer))
        .await
        .json()["decisions"]
        .as_array()
        .unwrap()
        .clone()
}

fn styles_with(f: &Fixture, verdict: &str) -> Vec<String> {
    let snap = f.state.snapshot().unwrap();
    snap.rows
        .iter()
        .filter(|d| d.market == "ALL" && d.verdict.as_str() == verdict)
        .map(|d| d.style_id.clone())
        .collect()
}

#[tokio::test]
async fn health_is_open_and_readiness_names_the_run() {
    let f = shared();
    assert_eq!(get(f, "/healthz", None).await.status, StatusCode::OK);
    let ready = get(f, "/readyz", None).await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(
        ready.json()["run_id"],
        f.state.snapshot().unwrap().run.run_id
    );
}

#[tokio::test]
async fn everything_else_needs_a_valid_token() {
    let f = shared();
    for uri in [
        "/v1/decisions",
        "/v1/styles/ST000001",
        "/v1/runs",
        "/metrics",
        "/v1/styles/ST000001/overrides",
    ] {
        let a = get(f, uri, None).await;
        a.problem(StatusCode::UNAUTHORIZED);
        assert!(a.headers.contains_key(header::WWW_AUTHENTICATE), "{uri}");
        let bad = call(
            f,
            Method::GET,
            uri,
            None,
            None,
            &[("authorization", "Bearer assay_nope")],
        )
        .await;
        assert!(
            bad.problem(StatusCode::UNAUTHORIZED).contains("unknown"),
            "{uri}"
        );
    }
    let basic = call(
        f,
        Method::GET,
        "/v1/runs",
        None,
        None,
        &[("authorization", "Basic abc")],
    )
    .await;
    assert!(basic.problem(StatusCode::UNAUTHORIZED).contains("Bearer"));
    for role in [
        Role::Viewer,
        Role::Buyer,
        Role::Analyst,
        Role::Merchandiser,
        Role::Admin,
    ] {
        assert_eq!(
            get(f, "/v1/decisions?limit=1", Some(role)).await.status,
            StatusCode::OK,
            "{role}"
        );
    }
}

#[tokio::test]
async fn decisions_page_through_every_row_exactly_once() {
    let f = shared();
    let mut seen = std::collections::HashSet::new();
    let mut uri = "/v1/decisions?limit=64".to_string();
    let mut total;
    loop {
        let page = get(f, &uri, Some(Role::Buyer)).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text());
        let page = page.json();
        assert!(page["as_of"].is_string() && page["run_id"].is_string());
        total = page["total"].as_u64().unwrap();
        for item in page["items"].as_array().unwrap() {
            let key = format!("{}/{}", item["style_id"], item["market"]);
            assert!(seen.insert(key.clone()), "{key} on two pages");
        }
        match page["next_cursor"].as_str() {
            Some(c) => uri = format!("/v1/decisions?limit=64&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen.len() as u64, total);
    assert_eq!(seen.len(), f.state.snapshot().unwrap().rows.len());
}

#[tokio::test]
async fn decisions_filter_and_sort() {
    let f = shared();
    let page = get(
        f,
        "/v1/decisions?market=ALL&min_p_keep=0.9&sort=-p_keep&limit=1000",
        Some(Role::Viewer),
    )
    .await
    .json();
    let items = page["items"].as_array().unwrap();
    assert!(!items.is_empty());
    let p: Vec<f64> = items
        .iter()
        .map(|i| i["p_keep"].as_f64().unwrap())
        .collect();
    assert!(p.windows(2).all(|w| w[0] >= w[1]), "not sorted descending");
    assert!(p.iter().all(|&x| x >= 0.9));
    assert!(items.iter().all(|i| i["market"] == "ALL"));

    let drops = get(
        f,
        "/v1/decisions?verdict=drop&category=tops&limit=1000",
        Some(Role::Viewer),
    )
    .await
    .json();
    for i in drops["items"].as_array().unwrap() {
        assert_eq!(i["verdict"], "drop");
        assert_eq!(i["category"], "tops");
    }
    let late = get(
        f,
        "/v1/decisions?launched_from=2026-09-20&launched_to=2026-09-21&limit=1000",
        Some(Role::Viewer),
    )
    .await
    .json();
    for i in late["items"].as_array().unwrap() {
        let day = &i["launch_at"].as_str().unwrap()[..10];
        assert!(("2026-09-20"..="2026-09-21").contains(&day), "{day}");
    }
    // The same days written as instants (the format of `launch_at` itself).
    let late_again = get(
        f,
        "/v1/decisions?launched_from=2026-09-20T06:00:00Z&launched_to=2026-09-21T23:00:00Z&limit=1000",
        Some(Role::Viewer),
    )
    .await
    .json();
    assert!(!late["items"].as_array().unwrap().is_empty());
    assert_eq!(late_again["items"], late["items"]);
}

#[tokio::test]
async fn bad_decision_parameters_say_what_is_wrong() {
    let f = shared();
    for (query, needle) in [
        ("limit=0", "limit"),
        ("limit=5000", "limit"),
        ("sort=colour", "cannot sort by `colour`"),
        ("verdict=kep", "verdict"),
        ("min_p_keep=2", "min_p_keep"),
        ("launched_from=yesterday", "launched_from"),
        ("launched_to=21.09.2026", "a date (2026-10-05)"),
        ("cursor=zz", "cursor"),
        // A multi-byte char where a hex pair is read must not split it (this panicked).
        ("cursor=a%E2%82%AC", "cursor"),
        ("format=xml", "format"),
        ("sort=-", "cannot sort by ``"),
        ("colour=red", "colour"),
    ] {
        let a = get(f, &format!("/v1/decisions?{query}"), Some(Role::Viewer)).await;
        let detail = a.problem(StatusCode::BAD_REQUEST);
        assert!(detail.contains(needle), "{query}: {detail}");
    }
}

#[tokio::test]
async fn decisions_export_as_csv() {
    let f = shared();
    let json = get(f, "/v1/decisions?market=ALL&limit=1", Some(Role::Viewer))
        .await
        .json();
    let total = json["total"].as_u64().unwrap() as usize;
    let by_header = call(
        f,
        Method::GET,
        "/v1/decisions?market=ALL",
        Some(Role::Viewer),
        None,
        &[("accept", "text/csv")],
    )
    .await;
    assert_eq!(by_header.status, StatusCode::OK);
    assert!(by_header.content_type.starts_with("text/csv"));
    let text = by_header.text();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("style_id,name,category,market"));
    assert_eq!(lines.len(), total + 1, "every matching row, not a page");
    let by_param = get(f, "/v1/decisions?market=ALL&format=csv", Some(Role::Viewer)).await;
    assert_eq!(by_param.text(), text);
}

#[tokio::test]
async fn a_style_has_its_markets_series_and_history() {
    let f = shared();
    let id = &styles_with(f, "keep")[0];
    let a = get(f, &format!("/v1/styles/{id}"), Some(Role::Buyer)).await;
    assert_eq!(a.status, StatusCode::OK);
    let s = a.json();
    assert_eq!(s["style_id"], id.as_str());
    let decisions = s["decisions"].as_array().unwrap();
    assert_eq!(decisions[0]["market"], "ALL");
    assert!(decisions.len() >= 2);
    assert!(decisions[0]["rate_shape"].as_f64().unwrap() > 0.0);
    assert!(!s["daily"].as_array().unwrap().is_empty());
    assert!(s["overrides"].is_array());
    get(f, "/v1/styles/NO-SUCH-STYLE", Some(Role::Buyer))
        .await
        .problem(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn overrides_change_the_effective_verdict_until_revoked() {
    let f = shared();
    let id = styles_with(f, "keep")[1].clone();
    let body =
        json!({"verdict": "drop", "reason": "quality_issue", "comment": "seams split in wash"});
    let uri = format!("/v1/styles/{id}/overrides");

    // Read (and so cache) the style first: the override must show through the cache.
    let before = get(f, &format!("/v1/styles/{id}"), Some(Role::Viewer))
        .await
        .json();
    assert_eq!(before["decisions"][0]["verdict"], "keep");

    let viewer = call(
        f,
        Method::POST,
        &uri,
        Some(Role::Viewer),
        Some(body.clone()),
        &[],
    )
    .await;
    viewer.problem(StatusCode::FORBIDDEN);

    let created = call(
        f,
        Method::POST,
        &uri,
        Some(Role::Merchandiser),
        Some(body.clone()),
        &[("idempotency-key", "retry-1")],
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let o = created.json();
    assert_eq!(o["user"], "merchandiser");
    assert_eq!(o["live"], true);

    let replay = call(
        f,
        Method::POST,
        &uri,
        Some(Role::Merchandiser),
        Some(body.clone()),
        &[("idempotency-key", "retry-1")],
    )
    .await;
    assert_eq!(replay.status, StatusCode::OK);
    assert_eq!(replay.json()["override_id"], o["override_id"]);
    let other = json!({"verdict": "test", "reason": "trend_signal"});
    call(
        f,
        Method::POST,
        &uri,
        Some(Role::Merchandiser),
        Some(other),
        &[("idempotency-key", "retry-1")],
    )
    .await
    .problem(StatusCode::CONFLICT);

    let style = get(f, &format!("/v1/styles/{id}"), Some(Role::Viewer))
        .await
        .json();
    let pooled = &style["decisions"][0];
    assert_eq!(
        (pooled["model_verdict"].as_str(), pooled["verdict"].as_str()),
        (Some("keep"), Some("drop"))
    );
    assert_eq!(pooled["override"]["override_id"], o["override_id"]);
    let list = get(
        f,
        "/v1/decisions?market=ALL&verdict=drop&limit=1000",
        Some(Role::Viewer),
    )
    .await
    .json();
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["style_id"] == id.as_str())
    );
    let history = get(f, &uri, Some(Role::Viewer)).await.json();
    assert_eq!(history["items"].as_array().unwrap().len(), 1);
    // Analysts see it in SQL at once, in the same session.
    let rows = f
        .state
        .engine
        .query(&format!(
            "SELECT verdict, reason, \"user\" FROM overrides WHERE style_id = '{id}'"
        ))
        .await
        .unwrap();
    let printed = arrow::util::pretty::pretty_format_batches(&rows)
        .unwrap()
        .to_string();
    assert!(
        printed.contains("drop")
            && printed.contains("quality_issue")
            && printed.contains("merchandiser"),
        "{printed}"
    );

    let delete = format!("/v1/overrides/{}", o["override_id"].as_str().unwrap());
    call(f, Method::DELETE, &delete, Some(Role::Buyer), None, &[])
        .await
        .problem(StatusCode::FORBIDDEN);
    let revoked = call(f, Method::DELETE, &delete, Some(Role::Admin), None, &[]).await;
    assert_eq!(revoked.status, StatusCode::OK);
    assert_eq!(revoked.json()["revoked_by"], "admin");
    call(f, Method::DELETE, &delete, Some(Role::Admin), None, &[])
        .await
        .problem(StatusCode::CONFLICT);
    call(
        f,
        Method::DELETE,
        "/v1/overrides/ov-nope",
        Some(Role::Admin),
        None,
        &[],
    )
    .await
    .problem(StatusCode::NOT_FOUND);

    let style = get(f, &format!("/v1/styles/{id}"), Some(Role::Viewer))
        .await
        .json();
    assert_eq!(
        style["decisions"][0]["verdict"], "keep",
        "model verdict back"
    );
    assert_eq!(
        style["overrides"][0]["live"], false,
        "revoked, still on record"
    );
}

#[tokio::test]
async fn a_keep_override_orders_and_applies_to_every_market_and_a_newer_one_replaces_it() {
    let f = shared();
    let id = styles_with(f, "drop")[2].clone();
    let uri = format!("/v1/styles/{id}/overrides");
    let before = decisions_of(f, &id).await;
    assert!(before.len() > 1, "pooled and market rows");
    let planned: i64 = before[0]["planned_reorder_units"].as_i64().unwrap();
    assert!(before.iter().all(|d| d["reorder_units"] == 0));

    // A pooled keep with no quantity orders the plan's proposal, in every market.
    let keep = json!({"verdict": "keep", "reason": "trend_signal"});
    let first = call(
        f,
        Method::POST,
        &uri,
        Some(Role::Merchandiser),
        Some(keep),
        &[],
    )
    .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text());
    let rows = decisions_of(f, &id).await;
    for d in &rows {
        assert_eq!(d["verdict"], "keep", "{d}");
        assert_eq!(d["model_reorder_units"], 0);
        assert_eq!(d["reorder_units"], d["planned_reorder_units"], "{d}");
    }
    assert_eq!(rows[0]["reorder_units"], planned);

    // A newer pooled keep with a quantity replaces the first and is split by the plan.
    let keep = json!({"verdict": "keep", "reason": "trend_signal", "reorder_units": 300});
    let second = call(
        f,
        Method::POST,
        &uri,
        Some(Role::Merchandiser),
        Some(keep),
        &[],
    )
    .await;
    assert_eq!(second.status, StatusCode::CREATED, "{}", second.text());
    let rows = decisions_of(f, &id).await;
    assert_eq!(rows[0]["reorder_units"], 300);
    let markets: i64 = rows[1..]
        .iter()
        .map(|d| d["reorder_units"].as_i64().unwrap())
        .sum();
    if planned > 0 {
        assert!((markets - 300).abs() <= rows.len() as i64, "{markets}");
    }
    let history = get(f, &uri, Some(Role::Viewer)).await.json();
    let items = history["items"].as_array().unwrap();
    let live: Vec<bool> = items.iter().map(|o| o["live"].as_bool().unwrap()).collect();
    assert_eq!(live, [false, true], "one override in force: {history}");
    assert_eq!(items[0]["superseded_by"], second.json()["override_id"]);

    // A quantity goes with a keep only.
    let drop_with_units = json!({"verdict": "drop", "reason": "trend_signal", "reorder_units": 5});
    let refused = call(
        f,
        Method::POST,
        &uri,
        Some(Role::Merchandiser),
        Some(drop_with_units),
        &[],
    )
    .await
    .problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.contains("goes with a keep"), "{refused}");
}

#[tokio::test]
async fn bad_overrides_are_refused_with_reasons() {
    let f = shared();
    let id = styles_with(f, "drop")[0].clone();
    let uri = format!("/v1/styles/{id}/overrides");
    let post = |body: Value| {
        call(
            f,
            Method::POST,
            &uri,
            Some(Role::Merchandiser),
            Some(body),
            &[],
        )
    };
    let d = post(json!({"verdict": "keep", "reason": "other"}))
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(d.contains("comment"), "{d}");
    let d = post(
        json!({"verdict": "keep", "reason": "trend_signal", "expires_at": "2001-01-01T00:00:00Z"}),
    )
    .await
    .problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(d.contains("past"), "{d}");
    let d = post(json!({"verdict": "maybe", "reason": "trend_signal"}))
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(d.contains("verdict"), "{d}");
    let mars = post(json!({"verdict": "keep", "reason": "trend_signal", "market": "MARS"})).await;
    let d = mars.problem(StatusCode::NOT_FOUND);
    assert!(d.contains("MARS"), "{d}");
    // The problem type names the error's kind, the same one pgwire and Flight SQL map.
    assert_eq!(mars.json()["type"], "tag:assay,2026:problem:not-found");
    call(
        f,
        Method::POST,
        "/v1/styles/NOPE/overrides",
        Some(Role::Merchandiser),
        Some(json!({"verdict": "keep", "reason": "trend_signal"})),
        &[],
    )
    .await
    .problem(StatusCode::NOT_FOUND);
    let raw = |ct: Option<&'static str>, body: &'static str| {
        let mut req = Request::builder().method(Method::POST).uri(&uri).header(
            header::AUTHORIZATION,
            format!("Bearer {}", f.tokens[&Role::Merchandiser]),
        );
        if let Some(ct) = ct {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        app(f).oneshot(req.body(Body::from(body)).unwrap())
    };
    assert_eq!(
        raw(Some("application/json"), "{not json")
            .await
            .unwrap()
            .status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        raw(None, "{}").await.unwrap().status(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    let huge = format!(
        "{{\"verdict\":\"keep\",\"reason\":\"other\",\"comment\":\"{}\"}}",
        "x".repeat(100_000)
    );
    let req = Request::builder()
        .method(Method::POST)
        .uri(&uri)
        .header(
            header::AUTHORIZATION,
            format!("Bearer {}", f.tokens[&Role::Merchandiser]),
        )
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(huge))
        .unwrap();
    let response = app(f).oneshot(req).await.unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);

    // Keys that differ only in bytes a lossy decoding would merge are refused, not merged.
    for key in [&b"retry-\xff"[..], b"retry-\xfe", b"tab\there"] {
        let req = Request::builder()
            .method(Method::POST)
            .uri(&uri)
            .header(
                header::AUTHORIZATION,
                format!("Bearer {}", f.tokens[&Role::Merchandiser]),
            )
            .header(header::CONTENT_TYPE, "application/json")
            .header("idempotency-key", HeaderValue::from_bytes(key).unwrap())
            .body(Body::from(r#"{"verdict":"keep","reason":"trend_signal"}"#))
            .unwrap();
        let response = app(f).oneshot(req).await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{key:?}");
    }
}

#[tokio::test]
async fn a_run_follows_the_published_one_and_lists_its_changes() {
    let f = build();
    let publish = |as_of: Option<&str>| {
        let body = match as_of {
            Some(t) => json!({"as_of": t, "publish": true}),
            None => json!({"publish": true}),
        };
        let f = &f;
        async move {
            let created = call(
                f,
                Method::POST,
                "/v1/runs",
                Some(Role::Admin),
                Some(body),
                &[],
            )
            .await;
            assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
            created.json()
        }
    };
    let changes = |run: &serde_json::Value| {
        let path = format!("/v1/runs/{}/changes", run["run_id"].as_str().unwrap());
        let f = &f;
        async move { get(f, &path, Some(Role::Viewer)).await.json() }
    };
    let week_ago = publish(Some("2026-09-20T00:00:00Z")).await;
    let today = publish(None).await;
    assert_eq!(today["previous_run_id"], week_ago["run_id"]);
    let list = changes(&today).await;
    assert_eq!(list["previous_run_id"], week_ago["run_id"]);
    let items = list["items"].as_array().unwrap();
    let pooled = |kind: &str, after: Option<&str>| {
        items
            .iter()
            .filter(|c| c["market"] == "ALL" && c["kind"] == kind)
            .filter(|c| after.is_none_or(|a| c["after"] == a))
            .count() as u64
    };
    let new_keeps = pooled("new", Some("keep")) + pooled("reversed", Some("keep"));
    assert!(new_keeps > 0, "a week of data makes new keeps: {list}");
    assert_eq!(today["new_keeps"].as_u64(), Some(new_keeps), "{today}");
    assert_eq!(today["held"].as_u64(), Some(pooled("held", None)));
    for c in items {
        let reasons = c["reasons"].as_array().unwrap();
        match c["kind"].as_str().unwrap() {
            "held" => {
                assert_eq!(c["after"], c["before"], "{c}");
                assert!(reasons.iter().any(|r| r == "held"), "{c}");
                if c["after"] == "keep" {
                    assert_eq!(c["reorder_units"], 0, "a held keep orders nothing: {c}");
                }
            }
            "reversed" => assert!(reasons.iter().any(|r| r == "reversed"), "{c}"),
            "new" => assert!(c["before"].is_null() || c["before"] == "test", "{c}"),
            other => assert_eq!(other, "withdrawn", "{c}"),
        }
    }
    // The same evidence again: nothing new, nothing reversed; what was held stays held.
    let again = publish(None).await;
    assert_eq!(again["previous_run_id"], today["run_id"]);
    assert_eq!(
        (again["new_keeps"].as_u64(), again["new_drops"].as_u64()),
        (Some(0), Some(0)),
        "{again}"
    );
    assert_eq!(again["reversed"].as_u64(), Some(0));
    assert_eq!(again["held"], today["held"]);
    let list = changes(&again).await;
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["kind"] == "held"),
        "{list}"
    );
    get(&f, "/v1/runs/nope/changes", Some(Role::Viewer))
        .await
        .problem(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn runs_are_listed_read_and_recomputed_by_admins_only() {
    let f = build();
    let runs = get(&f, "/v1/runs", Some(Role::Viewer)).await.json();
    let first = runs["runs"][0]["run_id"].as_str().unwrap().to_string();
    let one = get(&f, &format!("/v1/runs/{first}"), Some(Role::Viewer))
        .await
        .json();
    assert!(one["expected_wrong_keeps"].as_f64().is_some());
    get(&f, "/v1/runs/nope", Some(Role::Viewer))
        .await
        .problem(StatusCode::NOT_FOUND);
    let cursor = get(&f, "/v1/decisions?limit=10", Some(Role::Viewer))
        .await
        .json()["next_cursor"]
        .as_str()
        .unwrap()
        .to_string();

    call(
        &f,
        Method::POST,
        "/v1/runs",
        Some(Role::Merchandiser),
        Some(json!({})),
        &[],
    )
    .await
    .problem(StatusCode::FORBIDDEN);
    let created = call(
        &f,
        Method::POST,
        "/v1/runs",
        Some(Role::Admin),
        Some(json!({"as_of": "2026-09-20T00:00:00Z"})),
        &[],
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let look_back = created.json();
    assert_eq!(look_back["as_of"], "2026-09-20T00:00:00Z");
    // Eight days before the newest event: stored, said to be a look back, not served.
    assert_eq!(look_back["published"], false);
    assert!(
        look_back["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("a look back")),
        "{look_back}"
    );
    let served = get(&f, "/readyz", None).await.json()["run_id"].clone();
    assert_ne!(served, look_back["run_id"]);
    let page = get(&f, "/v1/decisions?limit=1", Some(Role::Viewer)).await;
    assert_eq!(page.headers["x-assay-run"], served.as_str().unwrap());
    // Published when asked.
    let created = call(
        &f,
        Method::POST,
        "/v1/runs",
        Some(Role::Admin),
        Some(json!({"as_of": "2026-09-20T00:00:00Z", "publish": true})),
        &[],
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let run = created.json();
    assert_eq!(run["published"], true);
    assert_eq!(
        get(&f, "/readyz", None).await.json()["run_id"],
        run["run_id"]
    );
    let runs = get(&f, "/v1/runs", Some(Role::Viewer)).await.json();
    let published: Vec<bool> = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["published"].as_bool().unwrap())
        .collect();
    assert_eq!(published, [true, false, false], "newest first: {runs}");
    // A cursor of the replaced run cannot silently skip or repeat rows.
    get(
        &f,
        &format!("/v1/decisions?limit=10&cursor={cursor}"),
        Some(Role::Viewer),
    )
    .await
    .problem(StatusCode::CONFLICT);
    // Before any launch there is nothing to decide; past the data, nothing observed.
    for (as_of, says) in [
        ("2020-01-01T00:00:00Z", "launched"),
        ("2030-01-01T00:00:00Z", "newest event"),
        ("2030-01-01", "newest event"),
        ("01/01/2030", "RFC 3339"),
        ("", "RFC 3339"),
    ] {
        let refused = call(
            &f,
            Method::POST,
            "/v1/runs",
            Some(Role::Admin),
            Some(json!({ "as_of": as_of })),
            &[],
        )
        .await;
        let detail = refused.problem(StatusCode::UNPROCESSABLE_ENTITY);
        assert!(detail.contains(says), "{as_of}: {detail}");
    }
}

#[tokio::test]
async fn documentation_metrics_and_unknown_routes() {
    let f = shared();
    let doc = get(f, "/openapi.json", None).await;
    assert_eq!(doc.status, StatusCode::OK);
    let doc = doc.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert!(doc["paths"]["/v1/decisions"]["get"].is_object());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    let ui = get(f, "/docs/", None).await;
    assert_eq!(ui.status, StatusCode::OK);
    assert!(
        ui.text().contains("swagger"),
        "Swagger UI is served by assay itself"
    );
    let _ = get(f, "/v1/decisions?limit=1", Some(Role::Viewer)).await;
    let metrics = get(f, "/metrics", Some(Role::Viewer)).await;
    assert_eq!(metrics.status, StatusCode::OK);
    assert!(
        metrics.text().contains("assay_http_requests_total"),
        "{}",
        metrics.text()
    );
    get(f, "/v2/nothing", Some(Role::Viewer))
        .await
        .problem(StatusCode::NOT_FOUND);
    call(
        f,
        Method::PUT,
        "/v1/decisions",
        Some(Role::Viewer),
        None,
        &[],
    )
    .await
    .problem(StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn stored_backtests_are_listed_and_their_reports_served() {
    let f = build();
    let empty = get(&f, "/v1/backtests", Some(Role::Viewer)).await;
    assert_eq!(empty.status, StatusCode::OK);
    assert_eq!(empty.json()["backtests"], json!([]));
    // A real (short) backtest over the sample, written where `assay backtest` puts it.
    let request = assay_engine::backtest::BacktestRequest {
        from: chrono::NaiveDate::from_ymd_opt(2026, 9, 1).unwrap(),
        to: chrono::NaiveDate::from_ymd_opt(2026, 9, 10).unwrap(),
        policies: vec![assay_engine::backtest::NamedPolicy {
            name: "default".into(),
            policy: assay_engine::decision::Policy::default(),
        }],
    };
    let report = assay_engine::backtest::run(&f.state.engine, &request)
        .await
        .unwrap();
    assay_engine::backtest::report::store(&report, &f.state.engine.dataset().storage).unwrap();

    let list = get(&f, "/v1/backtests", Some(Role::Buyer)).await.json();
    let first = &list["backtests"][0];
    assert_eq!(first["id"], report.id.as_str());
    assert_eq!(first["from"], "2026-09-01");
    let names: Vec<&str> = first["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names[0], "default");
    assert!(names.contains(&"perfect hindsight"), "{names:?}");
    let html = get(
        &f,
        &format!("/v1/backtests/{}/report", report.id),
        Some(Role::Viewer),
    )
    .await;
    assert_eq!(html.status, StatusCode::OK);
    assert!(html.content_type.starts_with("text/html"));
    assert!(html.text().contains("<svg") && html.text().contains("perfect hindsight"));
    let missing = get(&f, "/v1/backtests/..%2F..%2Fetc/report", Some(Role::Viewer)).await;
    assert!(missing.problem(StatusCode::NOT_FOUND).contains("not found"));
    get(&f, "/v1/backtests", None)
        .await
        .problem(StatusCode::UNAUTHORIZED);
}
