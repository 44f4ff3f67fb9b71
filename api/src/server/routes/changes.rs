//! The change feed: what buying systems must act on since the run they last read.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use chrono::Utc;
use serde::Deserialize;
use utoipa::IntoParams;

use assay_engine::decision::{ALL_MARKETS, Decision};
use assay_engine::store::overrides::Override;

use crate::server::dto::{ChangeCause, ChangeFeed, EffectiveCall, FeedItem};
use crate::server::error::{ApiError, Problem};
use crate::server::state::{AppState, applied_override, effective_reorder};

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
    let before = tokio::task::spawn_blocking(move || engine.store().read_run(&since))
        .await
        .map_err(|e| ApiError::internal(format!("reading run `{}`: {e}", query.since)))?
        .map_err(|e| match e {
            assay_engine::EngineError::RunNotFound { .. } => ApiError::not_found(format!(
                "run `{}` not found; GET /v1/runs lists them",
                query.since
            )),
            other => other.into(),
        })?;
    let then = state.overrides.live_at(before.summary.created_at);
    let now = state.overrides.live(Utc::now());
    let keep = |d: &&Decision| query.market.as_ref().is_none_or(|m| &d.market == m);
    let old = effective(&before.decisions, &then);
    let new = effective(&snapshot.rows, &now);
    let mut rows: BTreeMap<_, Pair> = BTreeMap::new();
    for d in before.decisions.iter().filter(keep) {
        rows.entry(order(d)).or_default().0 = Some(d);
    }
    for d in snapshot.rows.iter().filter(keep) {
        rows.entry(order(d)).or_default().1 = Some(d);
    }
    let items = rows
        .into_values()
        .filter_map(|(was, is)| {
            let key = |d: &Decision| (d.style_id.clone(), d.market.clone());
            let before = was.and_then(|d| old.get(&key(d))).cloned();
            let after = is.and_then(|d| new.get(&key(d))).cloned();
            if before.as_ref().map(|c| (c.verdict, c.reorder_units))
                == after.as_ref().map(|c| (c.verdict, c.reorder_units))
            {
                return None;
            }
            let row = is.or(was)?;
            let model_changed = match (was, is) {
                (Some(w), Some(i)) => (w.verdict, w.reorder_units) != (i.verdict, i.reorder_units),
                _ => true,
            };
            let override_changed = before.as_ref().and_then(|c| c.override_id.as_ref())
                != after.as_ref().and_then(|c| c.override_id.as_ref());
            Some(FeedItem {
                style_id: row.style_id.clone(),
                category: row.category.clone(),
                market: row.market.clone(),
                before,
                after,
                cause: match (model_changed, override_changed) {
                    (true, true) => ChangeCause::ModelAndOverride,
                    (false, true) => ChangeCause::Override,
                    _ => ChangeCause::Model,
                },
                reasons: is
                    .map(|d| d.reasons.iter().map(|r| r.as_str().to_string()).collect())
                    .unwrap_or_default(),
            })
        })
        .collect();
    Ok(Json(ChangeFeed {
        since: query.since,
        run_id: snapshot.run.run_id.clone(),
        items,
    }))
}

/// A row in the `since` run and in the served one.
type Pair<'a> = (Option<&'a Decision>, Option<&'a Decision>);

/// By style, then `ALL` before the markets.
fn order(d: &Decision) -> (&str, bool, &str) {
    (&d.style_id, d.market != ALL_MARKETS, &d.market)
}

/// Every row's call in a run under the overrides `live`.
fn effective(
    rows: &[Decision],
    live: &HashMap<(String, String), Override>,
) -> HashMap<(String, String), EffectiveCall> {
    let pooled: HashMap<&str, &Decision> = rows
        .iter()
        .filter(|d| d.market == ALL_MARKETS)
        .map(|d| (d.style_id.as_str(), d))
        .collect();
    rows.iter()
        .map(|d| {
            let applied = applied_override(d, live);
            let call = EffectiveCall {
                verdict: applied.map_or(d.verdict, |o| o.verdict).into(),
                reorder_units: effective_reorder(d, applied, || {
                    pooled.get(d.style_id.as_str()).copied()
                }),
                model_verdict: d.verdict.into(),
                override_id: applied.map(|o| o.override_id.clone()),
            };
            ((d.style_id.clone(), d.market.clone()), call)
        })
        .collect()
}
