//! Who may do what: roles, bearer tokens, and the middleware that checks them.

mod tokens;

use std::fmt;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use serde::{Deserialize, Serialize};

pub use tokens::{Principal, ScramSecret, TokenError, TokenStore, TokenSummary};

use crate::server::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads decisions, styles, runs and overrides.
    Viewer,
    /// Reads, and overrides verdicts.
    Merchandiser,
    /// Reads: for buying systems.
    Buyer,
    /// Reads, and runs SQL.
    Analyst,
    /// Everything, including recomputing runs.
    Admin,
}

/// Actions beyond reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    Read,
    Override,
    RecomputeRuns,
    Sql,
    /// Sees the server's internals: file paths and their read errors.
    Operate,
}

impl Role {
    pub fn may(self, permission: Permission) -> bool {
        match permission {
            Permission::Read => true,
            Permission::Override => matches!(self, Role::Merchandiser | Role::Admin),
            Permission::RecomputeRuns | Permission::Operate => self == Role::Admin,
            Permission::Sql => matches!(self, Role::Analyst | Role::Admin),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Merchandiser => "merchandiser",
            Role::Buyer => "buyer",
            Role::Analyst => "analyst",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Principal {
    /// # Errors
    /// 403 when the role may not.
    pub fn require(&self, permission: Permission) -> Result<(), ApiError> {
        if self.role.may(permission) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "the `{}` role may not do this ({permission:?}); ask an admin for a token with a role that may",
                self.role
            )))
        }
    }
}

/// Rejects requests without a valid bearer token (401) and puts the [`Principal`] into
/// the request's extensions for handlers.
pub async fn require_token(
    State(tokens): State<Arc<TokenStore>>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let principal = principal_of(request.headers(), &tokens)?;
    request.extensions_mut().insert(principal);
    Ok(next.run(request).await)
}

/// Whose bearer token the request carries.
///
/// # Errors
/// 401 when there is none or it is unknown or revoked.
pub fn principal_of(headers: &HeaderMap, tokens: &TokenStore) -> Result<Principal, ApiError> {
    let header = headers
        .get(AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("missing `Authorization: Bearer <token>` header"))?;
    let token = header
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .ok_or_else(|| {
            ApiError::unauthorized("the Authorization header must be `Bearer <token>`")
        })?;
    tokens
        .verify(token)
        .ok_or_else(|| ApiError::unauthorized("unknown or revoked token"))
}
