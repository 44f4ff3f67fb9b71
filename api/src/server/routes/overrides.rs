//! Merchandisers' overrides: create (idempotent), list, revoke.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use chrono::Utc;

use assay_engine::decision::ALL_MARKETS;
use assay_engine::store::overrides::NewOverride;

use crate::auth::{Permission, Principal};
use crate::server::dto::{NewOverrideBody, OverrideList, OverrideView};
use crate::server::error::{ApiError, Problem, off_runtime};
use crate::server::state::AppState;
use assay_engine::store::webhooks::EventType;

const MAX_COMMENT: usize = 2000;
const MAX_KEY: usize = 200;

#[utoipa::path(
    post,
    path = "/v1/styles/{style_id}/overrides",
    tag = "overrides",
    params(
        ("style_id" = String, Path, description = "The style's id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key (up to 200 printable ASCII bytes) return the first result instead of a second override", max_length = 200, pattern = "^[ -~]*$"),
    ),
    request_body = NewOverrideBody,
    responses(
        (status = 201, description = "Recorded durably", body = OverrideView),
        (status = 200, description = "A retry: the override recorded under this Idempotency-Key", body = OverrideView),
        (status = 400, description = "Invalid body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The role may not override", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such style or market", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Idempotency-Key reused for a different override", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A rule is broken (comment missing for `other`, expiry in the past)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn post_override(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    Path(style_id): Path<String>,
    headers: HeaderMap,
    body: Result<Json<NewOverrideBody>, JsonRejection>,
) -> Result<(StatusCode, Json<OverrideView>), ApiError> {
    principal.require(Permission::Override)?;
    let Json(body) = body?;
    let snapshot = state.snapshot()?;
    let rows = snapshot.by_style.get(&style_id).ok_or_else(|| {
        ApiError::not_found(format!(
            "style `{style_id}` is not in the latest decision run"
        ))
    })?;
    let market = body.market.unwrap_or_else(|| ALL_MARKETS.to_string());
    if !rows.iter().any(|&i| snapshot.rows[i].market == market) {
        let markets: Vec<&str> = rows
            .iter()
            .map(|&i| snapshot.rows[i].market.as_str())
            .collect();
        return Err(ApiError::not_found(format!(
            "style `{style_id}` has no decision for market `{market}`; it has {}",
            markets.join(", ")
        )));
    }
    if body
        .comment
        .as_deref()
        .is_some_and(|c| c.len() > MAX_COMMENT)
    {
        return Err(ApiError::bad_request(format!(
            "comment is longer than {MAX_COMMENT} bytes"
        )));
    }
    let key = idempotency_key(&headers)?;
    let new = NewOverride {
        style_id,
        market,
        verdict: body.verdict.into(),
        reason: body.reason.into(),
        comment: body.comment.filter(|c| !c.trim().is_empty()),
        user: principal.name.clone(),
        expires_at: body.expires_at,
        idempotency_key: key,
        reorder_units: body.reorder_units,
    };
    let writer = Arc::clone(&state);
    let now = Utc::now();
    // The writes flush to disk before they return: keep them off the async workers.
    // The event is in the outbox before the override is acknowledged.
    let (o, created) = off_runtime(move || {
        let (o, created) = writer.overrides.create(new, now)?;
        writer.webhooks.emit(
            EventType::OverrideCreated,
            &o.override_id,
            &OverrideView::new(&o, now),
        )?;
        Ok::<_, ApiError>((o, created))
    })
    .await?;
    metrics::counter!("assay_overrides_created_total").increment(u64::from(created));
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(OverrideView::new(&o, Utc::now()))))
}

#[utoipa::path(
    get,
    path = "/v1/styles/{style_id}/overrides",
    tag = "overrides",
    params(("style_id" = String, Path, description = "The style's id")),
    responses(
        (status = 200, description = "Every override of the style, oldest first, revoked ones included", body = OverrideList),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such style", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get_overrides(
    State(state): State<Arc<AppState>>,
    Path(style_id): Path<String>,
) -> Result<Json<OverrideList>, ApiError> {
    let snapshot = state.snapshot()?;
    if !snapshot.by_style.contains_key(&style_id) {
        return Err(ApiError::not_found(format!(
            "style `{style_id}` is not in the latest decision run"
        )));
    }
    let now = Utc::now();
    let items = state
        .overrides
        .for_style(&style_id)
        .iter()
        .map(|o| OverrideView::new(o, now))
        .collect();
    Ok(Json(OverrideList { style_id, items }))
}

#[utoipa::path(
    delete,
    path = "/v1/overrides/{override_id}",
    tag = "overrides",
    params(("override_id" = String, Path, description = "The override's id")),
    responses(
        (status = 200, description = "Revoked: the override stays on record, marked revoked", body = OverrideView),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The role may not revoke", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such override", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already revoked", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn delete_override(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    Path(override_id): Path<String>,
) -> Result<Json<OverrideView>, ApiError> {
    principal.require(Permission::Override)?;
    let store = Arc::clone(&state.overrides);
    let user = principal.name.clone();
    let now = Utc::now();
    let o = off_runtime(move || store.revoke(&override_id, &user, now)).await?;
    Ok(Json(OverrideView::new(&o, Utc::now())))
}

/// The request's Idempotency-Key, if it has one. The IETF draft makes the key a
/// structured-field string, i.e. visible ASCII and spaces; anything else is refused
/// rather than decoded lossily, where two different keys could become one.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(bytes) = headers.get("idempotency-key").map(|v| v.as_bytes()) else {
        return Ok(None);
    };
    if bytes.len() > MAX_KEY {
        return Err(ApiError::bad_request(format!(
            "Idempotency-Key is longer than {MAX_KEY} bytes"
        )));
    }
    let printable = bytes.iter().all(|b| (0x20..=0x7e).contains(b));
    let key = std::str::from_utf8(bytes)
        .ok()
        .filter(|_| printable)
        .ok_or_else(|| {
            ApiError::bad_request("Idempotency-Key must be printable ASCII (bytes 0x20 to 0x7E)")
        })?;
    Ok((!key.is_empty()).then(|| key.to_owned()))
}
