//! The daily loop's jobs: what ran, when, and how it ended.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::{Extension, Json};
use chrono::Utc;
use serde::Deserialize;
use utoipa::IntoParams;

use assay_engine::store::jobs::{JobFilter, JobKind, JobStatus};

use crate::auth::{Permission, Principal};
use crate::server::dto::{JobList, JobView};
use crate::server::error::{ApiError, Problem};
use crate::server::state::AppState;

const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 500;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct JobQuery {
    /// Only jobs of this kind: `ingest`, `rollup` or `decide`.
    #[param(value_type = Option<String>, pattern = "^(ingest|rollup|decide)$")]
    pub kind: Option<JobKind>,
    /// Only jobs in this state: `running`, `succeeded`, `failed` or `interrupted`.
    #[param(value_type = Option<String>, pattern = "^(running|succeeded|failed|interrupted)$")]
    pub status: Option<JobStatus>,
    /// Jobs per page, 1–500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<usize>,
    /// `next_before` of the previous page.
    pub before: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/jobs",
    tag = "operations",
    params(JobQuery),
    responses(
        (status = 200, description = "Jobs, newest first", body = JobList),
        (status = 400, description = "An unknown kind, status or parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Jobs name files and errors: admins only", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get_jobs(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    query: Result<Query<JobQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<JobList>, ApiError> {
    principal.require(Permission::Operate)?;
    let Query(query) = query?;
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be 1–{MAX_LIMIT}, not {limit}"
        )));
    }
    let jobs = state.jobs.list(&JobFilter {
        kind: query.kind,
        status: query.status,
        before: query.before,
        limit: limit + 1,
    });
    let now = Utc::now();
    let medians: Vec<(JobKind, Option<f64>)> = JobKind::ALL
        .iter()
        .map(|&k| (k, state.jobs.median_seconds(k)))
        .collect();
    let median = |kind: JobKind| {
        medians
            .iter()
            .find(|(k, _)| *k == kind)
            .and_then(|(_, m)| *m)
    };
    let next_before = (jobs.len() > limit).then(|| jobs[limit - 1].job_id.clone());
    Ok(Json(JobList {
        jobs: jobs
            .iter()
            .take(limit)
            .map(|j| JobView::of(j, median(j.kind), now))
            .collect(),
        next_before,
    }))
}

#[utoipa::path(
    get,
    path = "/v1/jobs/{job_id}",
    tag = "operations",
    params(("job_id" = String, Path, description = "The job's id")),
    responses(
        (status = 200, description = "The job", body = JobView),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Jobs name files and errors: admins only", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such job", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get_job(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    Path(job_id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    principal.require(Permission::Operate)?;
    let job = state.jobs.get(&job_id).ok_or_else(|| {
        ApiError::not_found(format!("job `{job_id}` not found; GET /v1/jobs lists them"))
    })?;
    let median = state.jobs.median_seconds(job.kind);
    Ok(Json(JobView::of(&job, median, Utc::now())))
}
