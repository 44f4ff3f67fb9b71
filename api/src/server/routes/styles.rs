//! `GET /v1/styles/{style_id}`: one style with everything behind its verdicts.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::Utc;

use crate::server::dto::{DailyPoint, OverrideView, StyleDetail};
use crate::server::error::{ApiError, Problem};
use crate::server::state::AppState;

#[utoipa::path(
    get,
    path = "/v1/styles/{style_id}",
    tag = "styles",
    params(("style_id" = String, Path, description = "The style's id")),
    responses(
        (status = 200, description = "The style, its decisions per market, daily series and override history", body = StyleDetail),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such style in the latest run", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get_style(
    State(state): State<Arc<AppState>>,
    Path(style_id): Path<String>,
) -> Result<Response, ApiError> {
    let snapshot = state.snapshot()?;
    let generation = state.overrides.generation();
    let cached = snapshot
        .style_json
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .get(&style_id)
        .filter(|(g, _)| *g == generation)
        .map(|(_, body)| body.clone());
    if let Some(body) = cached {
        return Ok(json_response(body));
    }

    let rows = snapshot.by_style.get(&style_id).ok_or_else(|| {
        ApiError::not_found(format!(
            "style `{style_id}` is not in the latest decision run"
        ))
    })?;
    let now = Utc::now();
    let history = state.overrides.for_style(&style_id);
    // The latest live override per market (history is oldest first).
    let live: HashMap<(String, String), _> = history
        .iter()
        .filter(|o| o.is_live(now))
        .map(|o| ((o.style_id.clone(), o.market.clone()), o.clone()))
        .collect();
    let info = snapshot.catalog.get(&style_id);
    let launch_day = info.and_then(|s| s.launch_at).map(|t| t.date_naive());
    let decisions = rows
        .iter()
        .map(|&i| snapshot.view(&snapshot.rows[i], &live, &state.policy, now))
        .collect();
    let daily = snapshot
        .daily
        .get(&style_id)
        .map(|days| {
            days.iter()
                .map(|d| DailyPoint::new(d, launch_day, snapshot.run.as_of))
                .collect()
        })
        .unwrap_or_default();
    let first = &snapshot.rows[rows[0]];
    let detail = StyleDetail {
        run_id: snapshot.run.run_id.clone(),
        as_of: snapshot.run.as_of,
        style_id: style_id.clone(),
        name: info.and_then(|s| s.name.clone()),
        category: first.category.clone(),
        brand: info.and_then(|s| s.brand.clone()),
        launch_at: info.and_then(|s| s.launch_at),
        list_price: info.map_or(0.0, |s| s.list_price),
        unit_cost: info.map_or(0.0, |s| s.unit_cost),
        lead_time_days: info.map_or(0, |s| s.lead_time_days),
        moq: info.map_or(0, |s| s.moq),
        decisions,
        daily,
        overrides: history.iter().map(|o| OverrideView::new(o, now)).collect(),
    };
    let body = bytes::Bytes::from(serde_json::to_vec(&detail).map_err(|e| ApiError::internal(&e))?);
    // An override with an expiry makes the answer depend on the clock: never cache it.
    if history.iter().all(|o| o.expires_at.is_none()) {
        snapshot
            .style_json
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(style_id, (generation, body.clone()));
    }
    Ok(json_response(body))
}

fn json_response(body: bytes::Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}
