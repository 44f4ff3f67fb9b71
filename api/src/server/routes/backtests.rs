//! Stored backtests: their scores, and each one's HTML report.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use assay_engine::EngineError;
use assay_engine::backtest::report;

use crate::server::dto::BacktestList;
use crate::server::error::{ApiError, Problem, off_runtime};
use crate::server::state::AppState;

#[utoipa::path(
    get,
    path = "/v1/backtests",
    tag = "backtests",
    responses(
        (status = 200, description = "Every stored backtest's scores, newest first (`assay backtest` writes them)", body = BacktestList),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get_backtests(
    State(state): State<Arc<AppState>>,
) -> Result<Json<BacktestList>, ApiError> {
    let storage = state.engine.dataset().storage.clone();
    let backtests = off_runtime(move || {
        let mut backtests = Vec::new();
        for id in report::stored(&storage)? {
            // An unreadable report is left out rather than failing all.
            let scores = report::stored_file(&storage, &id, "scores.json")
                .ok()
                .flatten();
            if let Some(value) = scores.and_then(|t| serde_json::from_slice(&t).ok()) {
                backtests.push(value);
            }
        }
        Ok::<_, EngineError>(backtests)
    })
    .await?;
    Ok(Json(BacktestList { backtests }))
}

#[utoipa::path(
    get,
    path = "/v1/backtests/{backtest_id}/report",
    tag = "backtests",
    params(("backtest_id" = String, Path, description = "The backtest's id (see GET /v1/backtests)")),
    responses(
        (status = 200, description = "The HTML report: tables and charts, self-contained", body = String, content_type = "text/html"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such backtest", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get_backtest_report(
    State(state): State<Arc<AppState>>,
    Path(backtest_id): Path<String>,
) -> Result<Response, ApiError> {
    let storage = state.engine.dataset().storage.clone();
    let id = backtest_id.clone();
    let html = off_runtime(move || {
        if !report::stored(&storage)?.contains(&id) {
            return Err(ApiError::not_found(format!(
                "backtest `{id}` not found; GET /v1/backtests lists them"
            )));
        }
        report::stored_file(&storage, &id, "report.html")?
            .map(|body| String::from_utf8_lossy(&body).into_owned())
            .ok_or_else(|| ApiError::not_found(format!("backtest `{id}` has no report")))
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response())
}
