//! Decision runs: list, read, recompute.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};

use assay_engine::EngineError;

use crate::auth::{Permission, Principal};
use crate::server::dto::{ChangeList, ChangeView, NewRunBody, RunList, RunView};
use crate::server::error::{ApiError, Problem, off_runtime};
use crate::server::state::AppState;

#[utoipa::path(
    get,
    path = "/v1/runs",
    tag = "runs",
    responses(
        (status = 200, description = "Every stored run, newest first; `published` marks the one served", body = RunList),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get_runs(State(state): State<Arc<AppState>>) -> Result<Json<RunList>, ApiError> {
    let reader = Arc::clone(&state);
    let (runs, published) = off_runtime(move || {
        Ok::<_, EngineError>((reader.engine.store().list_runs()?, reader.published_id()?))
    })
    .await?;
    Ok(Json(RunList {
        runs: runs
            .iter()
            .rev()
            .map(|r| RunView::of(r, published.as_ref() == Some(&r.run_id)))
            .collect(),
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
    let (reader, id) = (Arc::clone(&state), run_id.clone());
    let (run, published) = off_runtime(move || {
        Ok::<_, EngineError>((
            reader.engine.store().run_summary(&id)?,
            reader.published_id()?,
        ))
    })
    .await
    .map_err(|e| run_not_found(e, &run_id))?;
    Ok(Json(RunView::of(&run, published == Some(run_id))))
}

/// A missing run's 404 says where the runs are listed; other errors as they are.
pub(super) fn run_not_found(e: ApiError, run_id: &str) -> ApiError {
    if e.status == StatusCode::NOT_FOUND {
        ApiError::not_found(format!("run `{run_id}` not found; GET /v1/runs lists them"))
    } else {
        e
    }
}

#[utoipa::path(
    get,
    path = "/v1/runs/{run_id}/changes",
    tag = "runs",
    params(("run_id" = String, Path, description = "The run's id")),
    responses(
        (status = 200, description = "The rows whose call changed since the published run this run followed (new, reversed, withdrawn), and those that stand only because nothing reversed them (held), with the reasons", body = ChangeList),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such run", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get_run_changes(
    State(state): State<Arc<AppState>>,
    Path(run_id): Path<String>,
) -> Result<Json<ChangeList>, ApiError> {
    let engine = Arc::clone(&state.engine);
    let id = run_id.clone();
    // A run file is read whole: off the request threads.
    let run = off_runtime(move || engine.store().read_run(&id))
        .await
        .map_err(|e| run_not_found(e, &run_id))?;
    let mut items: Vec<ChangeView> = run.decisions.iter().filter_map(ChangeView::of).collect();
    items.sort_by(|a, b| (&a.style_id, &a.market).cmp(&(&b.style_id, &b.market)));
    Ok(Json(ChangeList {
        run_id,
        previous_run_id: run.summary.previous_run_id,
        items,
    }))
}

#[utoipa::path(
    post,
    path = "/v1/runs",
    tag = "runs",
    request_body(content = Option<NewRunBody>, description = "Optional `as_of` and `publish`"),
    responses(
        (status = 201, description = "Computed and stored; served at once when published (see `publish`)", body = RunView),
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
    body: Result<Json<Option<serde_json::Value>>, JsonRejection>,
) -> Result<(StatusCode, Json<RunView>), ApiError> {
    principal.require(Permission::RecomputeRuns)?;
    let body = match body {
        Ok(Json(None)) => NewRunBody::default(),
        // serde would also read the fields from an array, by position.
        Ok(Json(Some(value))) if value.is_object() => serde_json::from_value(value)
            .map_err(|e| ApiError::unprocessable(format!("invalid body: {e}")))?,
        Ok(Json(Some(_))) => {
            return Err(ApiError::unprocessable(
                "the body must be a JSON object: {\"as_of\": …, \"publish\": …}",
            ));
        }
        // No body (and so no JSON content type) means "now".
        Err(JsonRejection::MissingJsonContentType(_)) => NewRunBody::default(),
        Err(e) => return Err(e.into()),
    };
    // A look back is served only when asked: buying systems act on what is served.
    let newest = state.engine.latest_event();
    let past = body
        .as_of
        .is_some_and(|t| t + chrono::Duration::days(1) < newest);
    let publish = body.publish.unwrap_or(!past);
    let run = state
        .recompute(body.as_of, publish, &principal.name)
        .await?;
    let run = RunView::of(&run, publish);
    Ok((StatusCode::CREATED, Json(run)))
}
