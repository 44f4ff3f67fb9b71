//! PostgreSQL-wire logins against assay's token store: user = token name, password =
//! token, checked with SCRAM-SHA-256.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion_postgres::pgwire::api::auth::{AuthSource, LoginInfo, Password};
use datafusion_postgres::pgwire::error::PgWireResult;
use sha2::{Digest, Sha256};

use crate::auth::{Permission, TokenStore};

/// Hands SCRAM the secret of the token a client names.
#[derive(Clone)]
pub struct TokenAuthSource {
    tokens: Arc<TokenStore>,
    /// Per-server randomness for decoy secrets, so a made-up user name meets the same
    /// challenge every time and learns nothing from how it fails.
    decoy_key: [u8; 32],
}

impl std::fmt::Debug for TokenAuthSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenAuthSource").finish_non_exhaustive()
    }
}

impl TokenAuthSource {
    pub fn new(tokens: Arc<TokenStore>) -> Self {
        Self {
            tokens,
            decoy_key: rand::random(),
        }
    }

    /// A secret no password matches: unknown names, tokens whose role may not run SQL
    /// and tokens made before pgwire logins existed all fail the same way, at the proof,
    /// as a wrong password does.
    fn decoy(&self, user: &str) -> Password {
        let mut h = Sha256::new();
        h.update(self.decoy_key);
        h.update(user.as_bytes());
        let salt = h.finalize()[..16].to_vec();
        Password::new(Some(salt), rand::random::<[u8; 32]>().to_vec())
    }
}

#[async_trait]
impl AuthSource for TokenAuthSource {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        let user = login.user().unwrap_or_default();
        match self.tokens.scram_secret(user) {
            Some((principal, secret)) if principal.role.may(Permission::Sql) => {
                Ok(Password::new(Some(secret.salt()), secret.salted_password()))
            }
            _ => {
                tracing::info!(user, "pgwire login refused: no SQL token of that name");
                Ok(self.decoy(user))
            }
        }
    }
}
