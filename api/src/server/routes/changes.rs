//! The change feed: what buying systems must act on since the run they last read.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use chrono::Utc;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::server::dto::ChangeFeed;
use crate::server::error::{ApiError, Problem, off_runtime};
use crate::server::feed;
use crate::server::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FeedQuery {
    /// The run the client read last (`x-assay-run` of its answers).
    pub since: String,
    /// Only this market's rows (`ALL` for the pooled ones).
    pub market: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/changes",
    tag = "decisions",
    params(FeedQuery),
    responses(
        (status = 200, description = "The rows whose effective verdict or reorder differs between the run `since` \
            (under the overrides in force when it was made) and the served run (under those in force now), \
            with both calls and whether the model or an override changed it", body = ChangeFeed),
        (status = 400, description = "No `since`, or an unknown parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such run", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get_changes(
    State(state): State<Arc<AppState>>,
    query: Result<Query<FeedQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ChangeFeed>, ApiError> {
    let Query(query) = query?;
    let snapshot = state.snapshot()?;
    let engine = Arc::clone(&state.engine);
    let since = query.since.clone();
    // A run file is read whole: off the request threads.
    let before = off_runtime(move || engine.store().read_run(&since))
        .await
        .map_err(|e| super::runs::run_not_found(e, &query.since))?;
    let then = state.overrides.live_at(before.summary.created_at);
    let now = state.overrides.live(Utc::now());
    let items = feed::changes(
        &before.decisions,
        &then,
        &snapshot.rows,
        &now,
        query.market.as_deref(),
    );
    Ok(Json(ChangeFeed {
        since: query.since,
        run_id: snapshot.run.run_id.clone(),
        items,
    }))
}
