//! Every error answer is `application/problem+json` (RFC 9457) with a message a person
//! can act on. Server faults are logged in full and answered with a generic message and
//! an id to find the log line: a 5xx body never shows internals.

use std::fmt::Display;

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::{HeaderValue, Response, StatusCode, header};
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;

use assay_engine::sandbox::SandboxError;
use assay_engine::store::overrides::CreateError;
use assay_engine::{EngineError, ErrorKind};

use crate::error_codes::{codes, problem_type, public_message};

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem: `tag:assay,2026:problem:<kind>` (the README
    /// lists them), or `about:blank` for plain HTTP statuses.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    /// What went wrong and what to do about it.
    pub detail: String,
}

/// An error answer: a status, its problem type and what to tell the caller.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// The problem's `type`: an [`ErrorKind`]'s, or `about:blank` for plain HTTP answers.
    pub problem_type: String,
    pub detail: String,
}

impl ApiError {
    /// A plain HTTP answer no engine error stands behind (406, 415, …).
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            problem_type: "about:blank".into(),
            detail: detail.into(),
        }
    }

    /// An error of `kind`, answered as the one table says; an internal one is logged
    /// with its cause and answered without it.
    pub fn of(kind: ErrorKind, detail: impl Display) -> Self {
        Self {
            status: codes(kind).http,
            problem_type: problem_type(kind),
            detail: public_message(kind, &detail),
        }
    }
    pub fn bad_request(detail: impl Display) -> Self {
        Self::of(ErrorKind::BadRequest, detail)
    }
    pub fn unauthorized(detail: impl Display) -> Self {
        Self::of(ErrorKind::Unauthenticated, detail)
    }
    pub fn forbidden(detail: impl Display) -> Self {
        Self::of(ErrorKind::PermissionDenied, detail)
    }
    pub fn not_found(detail: impl Display) -> Self {
        Self::of(ErrorKind::NotFound, detail)
    }
    pub fn conflict(detail: impl Display) -> Self {
        Self::of(ErrorKind::Conflict, detail)
    }
    pub fn unprocessable(detail: impl Display) -> Self {
        Self::of(ErrorKind::Unprocessable, detail)
    }
    /// A fault of the server.
    pub fn internal(cause: impl Display) -> Self {
        Self::of(ErrorKind::Internal, cause)
    }
}

/// Runs work that blocks on storage (file system calls that flush, object-store round
/// trips, footers and listings) on tokio's blocking pool: a slow disk or bucket then
/// never holds the threads that answer every other request.
///
/// # Errors
/// The work's own error, or an internal error if it panicked.
pub async fn off_runtime<T, E>(
    work: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, ApiError>
where
    T: Send + 'static,
    E: Into<ApiError> + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(ApiError::internal)?
        .map_err(Into::into)
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        Self::of(e.kind(), e)
    }
}

impl From<CreateError> for ApiError {
    fn from(e: CreateError) -> Self {
        Self::of(e.kind(), e)
    }
}

impl From<assay_engine::store::approvals::DecideError> for ApiError {
    fn from(e: assay_engine::store::approvals::DecideError) -> Self {
        Self::of(e.kind(), e)
    }
}

impl From<SandboxError> for ApiError {
    fn from(e: SandboxError) -> Self {
        Self::of(e.kind(), e)
    }
}

/// A body that is not JSON is malformed (400); JSON whose fields do not fit is
/// unprocessable (422), as axum tells them apart.
impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> Self {
        let detail = e.body_text();
        match e.status() {
            StatusCode::BAD_REQUEST => Self::of(ErrorKind::BadRequest, detail),
            StatusCode::UNPROCESSABLE_ENTITY => Self::of(ErrorKind::Unprocessable, detail),
            StatusCode::PAYLOAD_TOO_LARGE => Self::of(ErrorKind::TooLarge, detail),
            other => Self::new(other, detail),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> Self {
        Self::bad_request(e.body_text())
    }
}

pub fn problem_response(
    status: StatusCode,
    problem_type: String,
    detail: String,
) -> Response<Body> {
    let problem = Problem {
        kind: problem_type,
        title: status.canonical_reason().unwrap_or("Error").to_string(),
        status: status.as_u16(),
        detail,
    };
    let mut response = (status, Json(problem)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"assay\""),
        );
    }
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response<Body> {
        problem_response(self.status, self.problem_type, self.detail)
    }
}

/// Turns the plain-text error answers of axum and tower-http (unknown route, wrong
/// method, body too large, timeout, unsupported media type) into problem documents.
pub async fn problems_for_plain_errors(response: Response<Body>) -> Response<Body> {
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_string();
    let detail = match status {
        StatusCode::NOT_FOUND => "no such endpoint; see /docs for the API".to_string(),
        StatusCode::METHOD_NOT_ALLOWED => {
            "this endpoint does not take that method; see /docs".to_string()
        }
        StatusCode::PAYLOAD_TOO_LARGE => "request body too large".to_string(),
        StatusCode::REQUEST_TIMEOUT => "the request took too long and was stopped".to_string(),
        _ if status.is_server_error() => "internal error".to_string(),
        _ if text.is_empty() => status.canonical_reason().unwrap_or("error").to_string(),
        _ => text,
    };
    let mut out = problem_response(status, "about:blank".into(), detail);
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}
