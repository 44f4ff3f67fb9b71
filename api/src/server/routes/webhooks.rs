//! Webhook subscriptions and their deliveries (admins).

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::Utc;

use assay_engine::store::webhooks::EventType;

use crate::auth::{Permission, Principal};
use crate::server::dto::{DeliveryList, DeliveryView, NewWebhookBody, WebhookList, WebhookView};
use crate::server::error::{ApiError, Problem, off_runtime};
use crate::server::state::AppState;

#[utoipa::path(
    post,
    path = "/v1/webhooks",
    tag = "webhooks",
    request_body = NewWebhookBody,
    responses(
        (status = 201, description = "Subscribed: events recorded from now on are delivered, signed with `secret` (shown only here)", body = WebhookView),
        (status = 400, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Admins only", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid body: a URL that is not http(s), an unknown event, no events, a secret of the wrong length", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn post_webhook(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    body: Result<Json<NewWebhookBody>, JsonRejection>,
) -> Result<(StatusCode, Json<WebhookView>), ApiError> {
    principal.require(Permission::Operate)?;
    let Json(body) = body?;
    check_url(&body.url)?;
    if body.events.is_empty() {
        return Err(ApiError::unprocessable(
            "events must name at least one of run.completed, decision.changed, override.created, reorder.approved",
        ));
    }
    let mut events: Vec<EventType> = Vec::new();
    for event in body.events {
        if !events.contains(&event.into()) {
            events.push(event.into());
        }
    }
    let secret = match body.secret {
        Some(secret) if (16..=256).contains(&secret.chars().count()) => secret,
        Some(_) => {
            return Err(ApiError::unprocessable(
                "secret must be 16 to 256 characters (or left out, to have one made)",
            ));
        }
        None => (0..32)
            .map(|_| format!("{:02x}", rand::random::<u8>()))
            .collect(),
    };
    let writer = Arc::clone(&state);
    let by = principal.name.clone();
    let sub = off_runtime(move || {
        writer
            .webhooks
            .store
            .subscribe(body.url, events, secret, &by, Utc::now())
    })
    .await?;
    Ok((StatusCode::CREATED, Json(WebhookView::of(&sub, true))))
}

/// An absolute http(s) URL with a host.
fn check_url(url: &str) -> Result<(), ApiError> {
    let parsed: Option<axum::http::Uri> = url.parse().ok();
    let ok = parsed.is_some_and(|u| {
        matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some_and(|h| !h.is_empty())
    });
    if ok {
        Ok(())
    } else {
        Err(ApiError::unprocessable(format!(
            "url `{url}`: expected an absolute http:// or https:// URL with a host"
        )))
    }
}

#[utoipa::path(
    get,
    path = "/v1/webhooks",
    tag = "webhooks",
    responses(
        (status = 200, description = "Every subscription (without secrets)", body = WebhookList),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Admins only", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get_webhooks(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<WebhookList>, ApiError> {
    principal.require(Permission::Operate)?;
    Ok(Json(WebhookList {
        webhooks: state
            .webhooks
            .store
            .subscriptions()
            .iter()
            .map(|s| WebhookView::of(s, false))
            .collect(),
    }))
}

#[utoipa::path(
    delete,
    path = "/v1/webhooks/{webhook_id}",
    tag = "webhooks",
    params(("webhook_id" = String, Path, description = "The subscription's id")),
    responses(
        (status = 204, description = "Unsubscribed: nothing more is delivered to it"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Admins only", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such subscription", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn delete_webhook(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    Path(webhook_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    principal.require(Permission::Operate)?;
    if state.webhooks.store.unsubscribe(&webhook_id)? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found(&webhook_id))
    }
}

#[utoipa::path(
    get,
    path = "/v1/webhooks/{webhook_id}/deliveries",
    tag = "webhooks",
    params(("webhook_id" = String, Path, description = "The subscription's id")),
    responses(
        (status = 200, description = "Every delivery tried, newest event first, with its attempts, status codes and errors", body = DeliveryList),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Admins only", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such subscription", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get_deliveries(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    Path(webhook_id): Path<String>,
) -> Result<Json<DeliveryList>, ApiError> {
    principal.require(Permission::Operate)?;
    if state.webhooks.store.subscription(&webhook_id).is_none() {
        return Err(not_found(&webhook_id));
    }
    let items = state
        .webhooks
        .store
        .deliveries(&webhook_id)
        .iter()
        .map(DeliveryView::of)
        .collect();
    Ok(Json(DeliveryList { webhook_id, items }))
}

fn not_found(webhook_id: &str) -> ApiError {
    ApiError::not_found(format!(
        "webhook `{webhook_id}` not found; GET /v1/webhooks lists them"
    ))
}
