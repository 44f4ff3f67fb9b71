//! `GET /v1/styles/{style_id}`: one style with everything behind its verdicts.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
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
) -> Result<Json<StyleDetail>, ApiError> {
    let snapshot = state.snapshot()?;
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
    Ok(Json(StyleDetail {
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
        overrides: state
            .overrides
            .for_style(&style_id)
            .iter()
            .map(|o| OverrideView::new(o, now))
            .collect(),
    }))
}
