//! Every error answer is `application/problem+json` (RFC 9457) with a message a person
//! can act on. Server faults are logged in full and answered with a generic message and
//! an id to find the log line: a 5xx body never shows internals.

use axum::Json;
use axum::body::Body;
use axum::http::{HeaderValue, Response, StatusCode, header};
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;

use assay_engine::EngineError;

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem (`about:blank` for plain HTTP statuses).
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    /// What went wrong and what to do about it.
    pub detail: String,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub detail: String,
}

impl ApiError {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            detail: detail.into(),
        }
    }
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, detail)
    }
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, detail)
    }
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, detail)
    }
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, detail)
    }
    pub fn unprocessable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, detail)
    }

    /// A fault of the server: logged with its cause, answered without it.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        let id = uuid_like();
        tracing::error!(error_id = %id, "internal error: {cause}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("internal error; the server log has the details under error id {id}"),
        )
    }

    /// The one place engine errors become HTTP statuses.
    pub fn from_engine(err: EngineError) -> Self {
        match err {
            EngineError::RunNotFound { .. } => Self::not_found(err.to_string()),
            EngineError::NothingToDecide { .. } => Self::unprocessable(err.to_string()),
            EngineError::NotAllowed(_) => Self::forbidden(err.to_string()),
            other => Self::internal(&other),
        }
    }
}

fn uuid_like() -> String {
    use rand::RngCore;
    format!("{:016x}", rand::rng().next_u64())
}

pub fn problem_response(status: StatusCode, detail: String) -> Response<Body> {
    let problem = Problem {
        kind: "about:blank".into(),
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
        problem_response(self.status, self.detail)
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
    let mut out = problem_response(status, detail);
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}
