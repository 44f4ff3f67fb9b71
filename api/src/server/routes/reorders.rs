//! Reorders: the served run's proposals, merchandisers' approvals and rejections, and
//! the export the ERP reads.

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::Utc;
use serde::Deserialize;
use utoipa::IntoParams;

use assay_engine::store::approvals::{Reorder, ReorderStatus, export_files};

use crate::auth::{Permission, Principal};
use crate::server::dto::{
    ExportView, ReorderDecisionBody, ReorderDecisionKind, ReorderList, ReorderView,
};
use crate::server::error::{ApiError, Problem, off_runtime};
use crate::server::state::{AppState, new_reorder};

const MAX_COMMENT: usize = 2000;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReorderQuery {
    /// `proposed` (the served run's, not yet decided), `approved`, `rejected` or
    /// `exported`; every reorder when absent.
    #[param(pattern = "^(proposed|approved|rejected|exported)$")]
    pub status: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/reorders",
    tag = "reorders",
    params(ReorderQuery),
    responses(
        (status = 200, description = "Reorders by id: the served run's proposals and every decided one", body = ReorderList),
        (status = 400, description = "An unknown status or parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get_reorders(
    State(state): State<Arc<AppState>>,
    query: Result<Query<ReorderQuery>, QueryRejection>,
) -> Result<Json<ReorderList>, ApiError> {
    let Query(query) = query?;
    let decided = |status| {
        state
            .engine
            .approvals()
            .list(status)
            .iter()
            .map(ReorderView::of)
            .collect::<Vec<_>>()
    };
    let items = match query.status.as_deref() {
        Some("proposed") => proposed(&state)?,
        Some("approved") => decided(Some(ReorderStatus::Approved)),
        Some("rejected") => decided(Some(ReorderStatus::Rejected)),
        Some("exported") => decided(Some(ReorderStatus::Exported)),
        None => {
            let mut all = proposed(&state)?;
            all.extend(decided(None));
            all.sort_by(|a, b| a.reorder_id.cmp(&b.reorder_id));
            all
        }
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "status `{other}`: expected proposed, approved, rejected or exported"
            )));
        }
    };
    Ok(Json(ReorderList { items }))
}

/// The served run's reorders that nobody has decided yet.
fn proposed(state: &AppState) -> Result<Vec<ReorderView>, ApiError> {
    let snapshot = state.snapshot()?;
    let live = state.overrides.live(Utc::now());
    let approvals = state.engine.approvals();
    Ok(snapshot
        .proposals(&live)
        .into_iter()
        .filter(|(d, _)| {
            approvals
                .get(&Reorder::id(&snapshot.run.run_id, &d.style_id, &d.market))
                .is_none()
        })
        .map(|(d, units)| ReorderView {
            reorder_id: Reorder::id(&snapshot.run.run_id, &d.style_id, &d.market),
            run_id: snapshot.run.run_id.clone(),
            style_id: d.style_id.clone(),
            market: d.market.clone(),
            category: d.category.clone(),
            status: "proposed".into(),
            units,
            proposed_units: units,
            p_keep: Some(d.p_keep),
            decided_by: None,
            decided_at: None,
            comment: None,
            auto_rule: None,
            export_id: None,
            exported_at: None,
        })
        .collect())
}

#[utoipa::path(
    post,
    path = "/v1/reorders",
    tag = "reorders",
    request_body = ReorderDecisionBody,
    responses(
        (status = 201, description = "Recorded (durably, with a `reorder.approved` event for an approval); an approved reorder is on order for the next runs", body = ReorderView),
        (status = 400, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Only merchandisers and admins decide reorders", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "The served run proposes no reorder for that style and market", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already decided, or a newer run is served", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A rejection without a comment, units below 1, a comment too long", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn post_reorder(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    body: Result<Json<ReorderDecisionBody>, JsonRejection>,
) -> Result<(StatusCode, Json<ReorderView>), ApiError> {
    principal.require(Permission::Override)?;
    let Json(body) = body?;
    let snapshot = state.snapshot()?;
    if body.run_id != snapshot.run.run_id {
        return Err(ApiError::of(
            assay_engine::ErrorKind::Conflict,
            format!(
                "run `{}` is not the served run (`{}`): decide on the served run's proposals",
                body.run_id, snapshot.run.run_id
            ),
        ));
    }
    let comment = body.comment.filter(|c| !c.trim().is_empty());
    if comment.as_ref().is_some_and(|c| c.len() > MAX_COMMENT) {
        return Err(ApiError::unprocessable(format!(
            "comment is longer than {MAX_COMMENT} bytes"
        )));
    }
    let status = match body.decision {
        ReorderDecisionKind::Approve => ReorderStatus::Approved,
        ReorderDecisionKind::Reject if comment.is_none() => {
            return Err(ApiError::unprocessable(
                "a rejection needs a comment saying why",
            ));
        }
        ReorderDecisionKind::Reject => ReorderStatus::Rejected,
    };
    if status == ReorderStatus::Rejected && body.units.is_some() {
        return Err(ApiError::unprocessable("units go with an approval"));
    }
    let live = state.overrides.live(Utc::now());
    let Some((d, proposed)) = snapshot
        .proposals(&live)
        .into_iter()
        .find(|(d, _)| d.style_id == body.style_id && d.market == body.market)
    else {
        return Err(ApiError::not_found(format!(
            "the served run proposes no reorder for style `{}` in market `{}`",
            body.style_id, body.market
        )));
    };
    let mut reorder = new_reorder(&snapshot, d, proposed, status, &principal.name);
    reorder.comment = comment;
    if let Some(units) = body.units {
        reorder.units = units;
    }
    let writer = Arc::clone(&state);
    let reorder = off_runtime(move || writer.record_reorder(reorder)).await?;
    Ok((StatusCode::CREATED, Json(ReorderView::of(&reorder))))
}

#[utoipa::path(
    post,
    path = "/v1/reorders/export",
    tag = "reorders",
    responses(
        (status = 201, description = "Every approved reorder not yet exported, written whole as CSV and Parquet (`<export_id>.csv`, `.parquet`) to the export folder or prefix; they are `exported` from now on", body = ExportView),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Admins only", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn post_export(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
) -> Result<(StatusCode, Json<ExportView>), ApiError> {
    principal.require(Permission::Operate)?;
    let writer = Arc::clone(&state);
    let view = off_runtime(move || export(&writer)).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

fn export(state: &AppState) -> Result<ExportView, ApiError> {
    let approvals = state.engine.approvals();
    let approved = approvals.list(Some(ReorderStatus::Approved));
    let now = Utc::now();
    let export_id = format!(
        "reorders-{}-{:04x}",
        now.format("%Y%m%dT%H%M%S%.3fZ"),
        rand::random::<u16>()
    );
    let (csv, parquet) = export_files(&approved)?;
    let (storage, dir) = match &state.reorders.export_to {
        Some(storage) => (storage.clone(), String::new()),
        None => (
            state.engine.dataset().storage.clone(),
            "exports".to_string(),
        ),
    };
    let mut files = Vec::new();
    for (ext, body) in [("csv", csv), ("parquet", parquet)] {
        let key = assay_engine::storage::join(&dir, &format!("{export_id}.{ext}"));
        storage.write(&key, body.into())?;
        files.push(storage.display(&key));
    }
    // Marked only once both files are whole: a failed export leaves them approved.
    approvals.mark_exported(
        &export_id,
        approved.iter().map(|r| r.reorder_id.clone()).collect(),
        now,
    )?;
    Ok(ExportView {
        export_id,
        count: approved.len(),
        files,
    })
}
