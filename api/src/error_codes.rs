//! The one table from an [`ErrorKind`] to each protocol's code: an HTTP status and
//! problem type, a PostgreSQL SQLSTATE, a gRPC (Flight SQL) code. Every protocol answers
//! an error through this table, so the same kind means the same thing everywhere, and an
//! internal error carries no internals on any of them.

use std::fmt::Display;

use assay_engine::ErrorKind;
use axum::http::StatusCode;
use tonic::Code;

/// One kind's code in each protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Codes {
    pub http: StatusCode,
    pub sqlstate: &'static str,
    pub grpc: Code,
}

/// The table. SQLSTATEs are PostgreSQL's (Appendix A of its manual); gRPC codes follow
/// their documented meaning (RESOURCE_EXHAUSTED for quotas and sizes, as gRPC itself
/// answers an oversize message).
pub const fn codes(kind: ErrorKind) -> Codes {
    use ErrorKind as K;
    let (http, sqlstate, grpc) = match kind {
        K::BadRequest => (StatusCode::BAD_REQUEST, "22023", Code::InvalidArgument),
        K::Syntax => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "42601",
            Code::InvalidArgument,
        ),
        K::InvalidQuery => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "42000",
            Code::InvalidArgument,
        ),
        K::UnknownTable => (StatusCode::UNPROCESSABLE_ENTITY, "42P01", Code::NotFound),
        K::UnknownColumn => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "42703",
            Code::InvalidArgument,
        ),
        K::Unprocessable => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "55000",
            Code::FailedPrecondition,
        ),
        K::NotFound => (StatusCode::NOT_FOUND, "42704", Code::NotFound),
        K::Conflict => (StatusCode::CONFLICT, "40001", Code::Aborted),
        K::Busy => (
            StatusCode::TOO_MANY_REQUESTS,
            "53000",
            Code::ResourceExhausted,
        ),
        K::TooLarge => (
            StatusCode::PAYLOAD_TOO_LARGE,
            "54000",
            Code::ResourceExhausted,
        ),
        K::TooComplex => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "54001",
            Code::ResourceExhausted,
        ),
        K::MemoryLimit => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "53200",
            Code::ResourceExhausted,
        ),
        K::Timeout => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "57014",
            Code::DeadlineExceeded,
        ),
        K::PermissionDenied => (StatusCode::FORBIDDEN, "42501", Code::PermissionDenied),
        K::Unauthenticated => (StatusCode::UNAUTHORIZED, "28000", Code::Unauthenticated),
        K::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "57P03", Code::Unavailable),
        K::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "XX000", Code::Internal),
    };
    Codes {
        http,
        sqlstate,
        grpc,
    }
}

/// The HTTP problem type (RFC 9457) of a kind: a tag URI, stable and not meant to be
/// fetched; the README's error table describes each.
pub fn problem_type(kind: ErrorKind) -> String {
    format!("tag:assay,2026:problem:{}", kind.slug())
}

/// The message a client may see for an error of `kind`. An internal error is logged in
/// full under a fresh id and answered with only that id.
pub fn public_message(kind: ErrorKind, message: &dyn Display) -> String {
    if kind != ErrorKind::Internal {
        return message.to_string();
    }
    let id = error_id();
    tracing::error!(error_id = %id, "internal error: {message}");
    format!("internal error; the server log has the details under error id {id}")
}

fn error_id() -> String {
    use rand::RngCore;
    format!("{:016x}", rand::rng().next_u64())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The contract: every kind against its three codes. A change here changes what
    /// clients see, and belongs in the README's error table too.
    #[test]
    fn every_kind_has_its_code_in_every_protocol() {
        use ErrorKind as K;
        let expected = [
            (K::BadRequest, 400, "22023", Code::InvalidArgument),
            (K::Syntax, 422, "42601", Code::InvalidArgument),
            (K::InvalidQuery, 422, "42000", Code::InvalidArgument),
            (K::UnknownTable, 422, "42P01", Code::NotFound),
            (K::UnknownColumn, 422, "42703", Code::InvalidArgument),
            (K::Unprocessable, 422, "55000", Code::FailedPrecondition),
            (K::NotFound, 404, "42704", Code::NotFound),
            (K::Conflict, 409, "40001", Code::Aborted),
            (K::Busy, 429, "53000", Code::ResourceExhausted),
            (K::TooLarge, 413, "54000", Code::ResourceExhausted),
            (K::TooComplex, 422, "54001", Code::ResourceExhausted),
            (K::MemoryLimit, 422, "53200", Code::ResourceExhausted),
            (K::Timeout, 422, "57014", Code::DeadlineExceeded),
            (K::PermissionDenied, 403, "42501", Code::PermissionDenied),
            (K::Unauthenticated, 401, "28000", Code::Unauthenticated),
            (K::Unavailable, 503, "57P03", Code::Unavailable),
            (K::Internal, 500, "XX000", Code::Internal),
        ];
        assert_eq!(expected.len(), ErrorKind::ALL.len(), "every kind is listed");
        for (kind, http, sqlstate, grpc) in expected {
            let got = codes(kind);
            assert_eq!(got.http.as_u16(), http, "{kind:?} over HTTP");
            assert_eq!(got.sqlstate, sqlstate, "{kind:?} over pgwire");
            assert_eq!(got.grpc, grpc, "{kind:?} over Flight SQL");
        }
        // Only a server fault or a server not ready is a 5xx: everything else is the
        // caller's to act on.
        for kind in ErrorKind::ALL {
            let c = codes(kind);
            let server_side = matches!(kind, K::Internal | K::Unavailable);
            assert_eq!(c.http.is_server_error(), server_side, "{kind:?}");
            assert_eq!(
                c.sqlstate.starts_with("XX"),
                kind == K::Internal,
                "{kind:?}"
            );
        }
        let slugs: std::collections::HashSet<_> = ErrorKind::ALL.iter().map(|k| k.slug()).collect();
        assert_eq!(
            slugs.len(),
            ErrorKind::ALL.len(),
            "problem types are distinct"
        );
    }

    #[test]
    fn an_internal_error_shows_an_id_and_none_of_its_cause() {
        let cause = "open /srv/assay/secret/path.parquet: permission denied";
        let shown = public_message(ErrorKind::Internal, &cause);
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("error id"), "{shown}");
        assert_eq!(public_message(ErrorKind::NotFound, &cause), cause);
    }
}
