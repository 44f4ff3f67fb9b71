//! Operations: liveness, readiness, metrics, and who a token is.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use crate::auth::{Permission, Principal, principal_of};
use crate::server::dto::{Health, Me, SetAsideFile};
use crate::server::state::AppState;

#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process is up", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        run_id: None,
        as_of: None,
        policy_version: None,
        set_aside_count: 0,
        set_aside_files: Vec::new(),
    })
}

#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "A decision run is loaded and served. Open to all: \
            set-aside files are counted; their paths and read errors are listed only for an admin's token", body = Health),
        (status = 503, description = "Still loading", body = Health),
    ))]
pub async fn readyz(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> (StatusCode, Json<Health>) {
    let set_aside = state.engine.set_aside_files();
    let set_aside_count = set_aside.len();
    // Paths and parser errors describe the server's disk: only operators see them.
    let operator =
        principal_of(&headers, &state.tokens).is_ok_and(|p| p.role.may(Permission::Operate));
    let set_aside_files: Vec<SetAsideFile> = if operator {
        set_aside
            .into_iter()
            .map(|f| SetAsideFile {
                path: f.path,
                problem: f.problem,
                moved_to: f.moved_to,
            })
            .collect()
    } else {
        Vec::new()
    };
    let snapshot = state.snapshot().ok();
    let run = snapshot.as_ref().map(|s| &s.run);
    (
        if run.is_some() {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        Json(Health {
            status: if run.is_some() { "ready" } else { "loading" }.into(),
            run_id: run.map(|r| r.run_id.clone()),
            as_of: run.map(|r| r.as_of),
            policy_version: run.map(|r| r.policy_version.clone()),
            set_aside_count,
            set_aside_files,
        }),
    )
}

#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses(
        (status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"),
        (status = 401, description = "No valid token", body = crate::server::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    crate::server::jobs::record_time_since_success(&state.jobs);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

#[utoipa::path(get, path = "/v1/me", tag = "operations",
    responses(
        (status = 200, description = "Who the token belongs to and what it may do (the web page shows only the buttons a role may use)", body = Me),
        (status = 401, description = "No valid token", body = crate::server::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn me(Extension(principal): Extension<Principal>) -> Json<Me> {
    Json(Me {
        name: principal.name,
        role: principal.role.as_str().to_owned(),
        may_override: principal.role.may(Permission::Override),
        may_recompute: principal.role.may(Permission::RecomputeRuns),
        may_sql: principal.role.may(Permission::Sql),
        may_operate: principal.role.may(Permission::Operate),
    })
}
