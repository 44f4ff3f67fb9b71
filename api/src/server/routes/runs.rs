//! Decision runs: list, read, recompute.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};

use crate::auth::{Permission, Principal};
use crate::server::dto::{NewRunBody, RunList, RunView};
use crate::server::error::{ApiError, Problem};
use crate::server::state::AppState;

#[utoipa::path(
    get,
    path = "/v1/runs",
    tag = "runs",
    responses(
        (status = 200, description = "Every stored run, newest first", body = RunList),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get_runs(State(state): State<Arc<AppState>>) -> Result<Json<RunList>, ApiError> {
    let runs = state.engine.store().list_runs()?;
    Ok(Json(RunList {
        runs: runs.iter().rev().map(RunView::from).collect(),
    }))
}

#[utoipa::path(
    get,
    path = "/v1/runs/{run_id}",
    tag = "runs",
    params(("run_id" = String, Path, description = "The run's id")),
    responses(
        (status = 200, description = "The run's summary", body = RunView),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such run", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get_run(
    State(state): State<Arc<AppState>>,
    Path(run_id): Path<String>,
) -> Result<Json<RunView>, ApiError> {
    let runs = state.engine.store().list_runs()?;
    let run = runs.iter().find(|r| r.run_id == run_id).ok_or_else(|| {
        ApiError::not_found(format!("run `{run_id}` not found; GET /v1/runs lists them"))
    })?;
    Ok(Json(RunView::from(run)))
}

#[utoipa::path(
    post,
    path = "/v1/runs",
    tag = "runs",
    request_body(content = Option<NewRunBody>, description = "Optional `as_of`"),
    responses(
        (status = 201, description = "Computed, stored and now served", body = RunView),
        (status = 400, description = "Invalid body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Only admins recompute", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Nothing to decide at that time: no style launched by then, or the time is more than a day after the newest event", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn post_run(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    body: Result<Json<Option<NewRunBody>>, JsonRejection>,
) -> Result<(StatusCode, Json<RunView>), ApiError> {
    principal.require(Permission::RecomputeRuns)?;
    let body = match body {
        Ok(Json(b)) => b.unwrap_or_default(),
        // No body (and so no JSON content type) means "now".
        Err(JsonRejection::MissingJsonContentType(_)) => NewRunBody::default(),
        Err(e) => return Err(e.into()),
    };
    // Past the newest event there is nothing to observe: a run then would read the
    // empty days as no demand, and be served to buying systems at once.
    let newest = state.engine.latest_event();
    if let Some(as_of) = body
        .as_of
        .filter(|t| *t > newest + chrono::Duration::days(1))
    {
        return Err(ApiError::unprocessable(format!(
            "as_of {as_of} is after the newest event ({newest}) by more than a day; decide as of a time the data covers"
        )));
    }
    let run = state.recompute(body.as_of).await?;
    Ok((StatusCode::CREATED, Json(RunView::from(&run))))
}
