//! The router: every endpoint, its OpenAPI document, and the layers around them.

mod backtests;
mod changes;
mod decisions;
mod jobs;
mod ops;
mod overrides;
mod reorders;
mod runs;
mod sql;
mod styles;
mod webhooks;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

use super::error::problems_for_plain_errors;
use super::state::AppState;
use crate::auth::require_token;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "assay",
        description = "Keep / drop / test decisions for newly launched styles, with the numbers behind them. \
                       Every endpoint but the health checks and this document needs `Authorization: Bearer <token>` \
                       (`assay token create`).",
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "decisions", description = "The effective keep / drop / test list"),
        (name = "styles", description = "One style in depth"),
        (name = "overrides", description = "Merchandisers' overrides"),
        (name = "runs", description = "Decision runs"),
        (name = "sql", description = "Read-only SQL over every table, for analysts"),
        (name = "backtests", description = "Replays of history scoring policies (`assay backtest`)"),
        (name = "operations", description = "Health and metrics"),
        (name = "reorders", description = "Keeps' reorders: proposed, approved or rejected, exported for the ERP"),
        (name = "webhooks", description = "Events pushed to buying systems, signed and retried"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("assay token")
                    .build(),
            ),
        );
    }
}

/// Limits applied to every request.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub request_timeout: Duration,
    pub max_body_bytes: usize,
    /// Connections each protocol (HTTP, pgwire, Flight SQL) holds open at once.
    pub max_connections: usize,
    /// An HTTP request's headers arrive within this; also the keep-alive idle limit.
    pub header_timeout: Duration,
}

/// Endpoints that need a token.
fn protected_routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(decisions::get_decisions))
        .routes(routes!(styles::get_style))
        .routes(routes!(overrides::get_overrides, overrides::post_override))
        .routes(routes!(overrides::delete_override))
        .routes(routes!(runs::get_runs, runs::post_run))
        .routes(routes!(runs::get_run))
        .routes(routes!(runs::get_run_changes))
        .routes(routes!(changes::get_changes))
        .routes(routes!(jobs::get_jobs))
        .routes(routes!(jobs::get_job))
        .routes(routes!(webhooks::post_webhook, webhooks::get_webhooks))
        .routes(routes!(webhooks::delete_webhook))
        .routes(routes!(webhooks::get_deliveries))
        .routes(routes!(reorders::get_reorders, reorders::post_reorder))
        .routes(routes!(reorders::post_export))
        .routes(routes!(backtests::get_backtests))
        .routes(routes!(backtests::get_backtest_report))
        .routes(routes!(ops::metrics))
        .routes(routes!(ops::me))
}

/// Analysts' SQL: needs a token, and runs under the query's own time limit instead of
/// the request timeout (a query may legitimately take longer than a page of decisions).
fn sql_routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(sql::post_sql))
}

/// Endpoints open to anyone: the health checks.
fn open_routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
}

/// The OpenAPI document, generated from the handlers' annotations.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, mut api) = protected_routes().split_for_parts();
    api.merge(sql_routes().split_for_parts().1);
    api.merge(open_routes().split_for_parts().1);
    api
}

pub fn router(state: Arc<AppState>, limits: Limits) -> Router {
    let (protected, mut api) = protected_routes().split_for_parts();
    let (open, open_api) = open_routes().split_for_parts();
    api.merge(open_api);
    let (sql, sql_api) = sql_routes().split_for_parts();
    api.merge(sql_api);
    // The answer may stream for as long as the query's limits allow, but the request
    // body (the SQL) must arrive within the request timeout, as on every other route.
    let sql = sql
        .layer(RequestBodyTimeoutLayer::new(limits.request_timeout))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state.tokens),
            require_token,
        ));

    let protected = protected.layer(middleware::from_fn_with_state(
        Arc::clone(&state.tokens),
        require_token,
    ));
    let timed = Router::new()
        .merge(protected)
        .merge(open)
        .merge(crate::web::routes())
        .merge(SwaggerUi::new("/docs").url("/openapi.json", api))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ));
    let served = Arc::clone(&state);
    Router::new()
        .merge(timed)
        .merge(sql)
        .with_state(state)
        .layer(middleware::map_response_with_state(served, name_served_run))
        .layer(middleware::map_response(problems_for_plain_errors))
        .layer(middleware::from_fn(record_metrics))
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(tower_http::trace::TraceLayer::new_for_http())
}

/// Names the served run, its as-of and policy on every answer, so a buying system can
/// tell which run its rows came from and notice a new one.
async fn name_served_run(State(state): State<Arc<AppState>>, mut response: Response) -> Response {
    if let Ok(snapshot) = state.snapshot() {
        let run = &snapshot.run;
        let headers = response.headers_mut();
        for (name, value) in [
            ("x-assay-run", run.run_id.clone()),
            ("x-assay-as-of", run.as_of.to_rfc3339()),
            ("x-assay-policy", run.policy_version.clone()),
        ] {
            if let Ok(value) = axum::http::HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        }
    }
    response
}

/// Counts requests and their latency by route and status.
async fn record_metrics(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = request.method().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    let labels = [("method", method), ("route", route), ("status", status)];
    metrics::counter!("assay_http_requests_total", &labels).increment(1);
    metrics::histogram!("assay_http_request_duration_seconds", &labels)
        .record(started.elapsed().as_secs_f64());
    response
}
