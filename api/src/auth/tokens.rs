//! API tokens: stored only as SHA-256 hashes, compared in constant time.
//!
//! Tokens are 256 random bits, so a plain hash is as strong as a slow one here: there is
//! nothing to brute-force. The file is rewritten atomically (temporary file + rename).
//!
//! A token also logs in over the PostgreSQL wire protocol (user = token name, password =
//! token) with SCRAM-SHA-256, so the password never crosses the wire. SCRAM's server side
//! needs the salted password, which is stored beside the hash: whoever can read the token
//! file can log in over pgwire (as with PostgreSQL's own `pg_authid`), never over HTTP.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::Role;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct TokenRecord {
    name: String,
    role: Role,
    /// Hex SHA-256 of the token.
    sha256: String,
    created_at: DateTime<Utc>,
    /// Absent in token files written before pgwire logins existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scram: Option<ScramSecret>,
}

/// What SCRAM-SHA-256's server side needs to check a password it never sees.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScramSecret {
    /// Hex.
    salt: String,
    iterations: usize,
    /// Hex `Hi(token, salt, iterations)` (RFC 5802).
    salted_password: String,
}

impl ScramSecret {
    /// The iteration count PostgreSQL itself uses.
    pub const ITERATIONS: usize = 4096;

    fn derive(token: &str) -> Self {
        let mut salt = [0_u8; 16];
        rand::rng().fill_bytes(&mut salt);
        let salted = datafusion_postgres::pgwire::api::auth::sasl::scram::gen_salted_password(
            token,
            &salt,
            Self::ITERATIONS,
        );
        Self {
            salt: hex(&salt),
            iterations: Self::ITERATIONS,
            salted_password: hex(&salted),
        }
    }

    pub fn salt(&self) -> Vec<u8> {
        unhex(&self.salt)
    }

    pub fn iterations(&self) -> usize {
        self.iterations
    }

    pub fn salted_password(&self) -> Vec<u8> {
        unhex(&self.salted_password)
    }
}

/// Who a valid token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub role: Role,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token file {path}: {message}")]
    File { path: String, message: String },
    #[error("a token named `{0}` exists already")]
    NameTaken(String),
    #[error("token name must be 1–64 letters, digits, `-`, `_` or `.`, got `{0}`")]
    BadName(String),
    #[error("no token named `{0}`")]
    Unknown(String),
}

/// What may be shown about a token: never its secret or hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenSummary {
    pub name: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
}

pub struct TokenStore {
    path: PathBuf,
    records: RwLock<Vec<TokenRecord>>,
    /// The file's modification time and length when last read: `assay token create` run beside a
    /// live server changes the file, and the server picks the change up.
    loaded: RwLock<Option<(SystemTime, u64)>>,
}

impl TokenStore {
    /// Opens the token file (absent = no tokens yet).
    ///
    /// # Errors
    /// The file exists but cannot be read or parsed.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, TokenError> {
        let path = path.into();
        if let Some(problem) = private::too_open(&path) {
            tracing::warn!("token secrets readable by other local users: {problem}");
        }
        let loaded = modified(&path);
        let records = read_records(&path)?;
        Ok(Self {
            path,
            records: RwLock::new(records),
            loaded: RwLock::new(loaded),
        })
    }

    /// Rereads the file if it changed since it was read. A file that became unreadable
    /// keeps the tokens already loaded (and is logged), so a bad edit locks nobody out.
    fn refresh(&self) {
        let now = modified(&self.path);
        if now == *self.loaded.read().unwrap_or_else(|p| p.into_inner()) {
            return;
        }
        match read_records(&self.path) {
            Ok(records) => {
                *self.records.write().unwrap_or_else(|p| p.into_inner()) = records;
                *self.loaded.write().unwrap_or_else(|p| p.into_inner()) = now;
            }
            Err(e) => tracing::error!("keeping the tokens already loaded: {e}"),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn is_empty(&self) -> bool {
        self.records
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }

    /// Creates a token and returns it: the only time it is ever shown.
    ///
    /// # Errors
    /// A bad or taken name, or the file cannot be written.
    pub fn create(&self, name: &str, role: Role) -> Result<String, TokenError> {
        self.refresh();
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid {
            return Err(TokenError::BadName(name.into()));
        }
        let mut records = self.records.write().unwrap_or_else(|p| p.into_inner());
        if records.iter().any(|r| r.name == name) {
            return Err(TokenError::NameTaken(name.into()));
        }
        let mut secret = [0_u8; 32];
        rand::rng().fill_bytes(&mut secret);
        let token = format!("assay_{}", hex(&secret));
        records.push(TokenRecord {
            name: name.into(),
            role,
            sha256: hex(&Sha256::digest(token.as_bytes())),
            created_at: Utc::now(),
            scram: Some(ScramSecret::derive(&token)),
        });
        self.save(&records)?;
        Ok(token)
    }

    /// Every token's holder, role and creation time, oldest first.
    pub fn list(&self) -> Vec<TokenSummary> {
        self.refresh();
        let records = self.records.read().unwrap_or_else(|p| p.into_inner());
        records
            .iter()
            .map(|r| TokenSummary {
                name: r.name.clone(),
                role: r.role,
                created_at: r.created_at,
            })
            .collect()
    }

    /// Deletes the token named `name`. A server reading the same file stops accepting it
    /// on its next request (HTTP and pgwire both reread a changed file).
    ///
    /// # Errors
    /// No token has that name, or the file cannot be written.
    pub fn revoke(&self, name: &str) -> Result<(), TokenError> {
        self.refresh();
        let mut records = self.records.write().unwrap_or_else(|p| p.into_inner());
        let before = records.len();
        records.retain(|r| r.name != name);
        if records.len() == before {
            return Err(TokenError::Unknown(name.into()));
        }
        self.save(&records)?;
        Ok(())
    }

    /// The principal a token belongs to. Every stored hash is compared, in constant time.
    pub fn verify(&self, token: &str) -> Option<Principal> {
        self.refresh();
        let hash = hex(&Sha256::digest(token.as_bytes()));
        let records = self.records.read().unwrap_or_else(|p| p.into_inner());
        let mut found = None;
        for r in records.iter() {
            if bool::from(r.sha256.as_bytes().ct_eq(hash.as_bytes())) {
                found = Some(Principal {
                    name: r.name.clone(),
                    role: r.role,
                });
            }
        }
        found
    }

    /// The principal and SCRAM secret of the token named `name`, if it has one.
    pub fn scram_secret(&self, name: &str) -> Option<(Principal, ScramSecret)> {
        self.refresh();
        let records = self.records.read().unwrap_or_else(|p| p.into_inner());
        let r = records.iter().find(|r| r.name == name)?;
        let secret = r.scram.clone()?;
        Some((
            Principal {
                name: r.name.clone(),
                role: r.role,
            },
            secret,
        ))
    }

    fn save(&self, records: &[TokenRecord]) -> Result<(), TokenError> {
        let fail = |e: std::io::Error| file_err(&self.path, e.to_string());
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(fail)?;
            // The file holds SCRAM secrets, enough to log in over pgwire: owner only.
            std::fs::set_permissions(dir, private::dir()).map_err(fail)?;
        }
        let tmp = self.path.with_extension("json.tmp");
        let body =
            serde_json::to_vec_pretty(records).map_err(|e| file_err(&self.path, e.to_string()))?;
        let _ = std::fs::remove_file(&tmp);
        let mut file = private::create(&tmp).map_err(fail)?;
        file.write_all(&body)
            .and_then(|()| file.sync_all())
            .and_then(|()| std::fs::rename(&tmp, &self.path))
            .map_err(fail)?;
        // What this store wrote is what it holds: no reread on the next call.
        *self.loaded.write().unwrap_or_else(|p| p.into_inner()) = modified(&self.path);
        Ok(())
    }
}

/// Owner-only modes for the token file and its folder, and a check of them.
mod private {
    use std::fs::{File, OpenOptions, Permissions};
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    use std::path::Path;

    pub fn dir() -> Permissions {
        Permissions::from_mode(0o700)
    }

    /// A new file readable and writable by its owner only, from its first byte.
    pub fn create(path: &Path) -> std::io::Result<File> {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
    }

    /// What is wider than owner-only about the file or its folder, if anything.
    pub fn too_open(path: &Path) -> Option<String> {
        let mode = |p: &Path| {
            std::fs::metadata(p)
                .ok()
                .map(|m| m.permissions().mode() & 0o777)
        };
        let file = mode(path)?;
        if file & 0o077 != 0 {
            return Some(format!(
                "{} has mode {file:o}; run `chmod 600` on it",
                path.display()
            ));
        }
        let dir = path.parent()?;
        let folder = mode(dir)?;
        (folder & 0o077 != 0).then(|| {
            format!(
                "{} has mode {folder:o}; run `chmod 700` on it",
                dir.display()
            )
        })
    }
}

/// Modification time and length: together they change on every rewrite, even where the
/// filesystem's clock is coarse.
fn modified(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

fn read_records(path: &Path) -> Result<Vec<TokenRecord>, TokenError> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| file_err(path, e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(file_err(path, e.to_string())),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The inverse of [`hex`] for the strings this module wrote; anything else yields
/// nothing, which fails a login rather than panicking.
fn unhex(text: &str) -> Vec<u8> {
    (0..text.len() / 2)
        .filter_map(|i| u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

fn file_err(path: &Path, message: String) -> TokenError {
    TokenError::File {
        path: path.display().to_string(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn the_token_file_is_owner_only_even_where_it_was_not() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join(".assay");
        std::fs::create_dir(&folder).unwrap();
        std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = folder.join("tokens.json");
        std::fs::write(&path, "[]").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(private::too_open(&path).unwrap().contains("chmod 600"));

        let store = TokenStore::open(&path).unwrap();
        store.create("ops", Role::Admin).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&folder), 0o700);
        assert_eq!(private::too_open(&path), None);
    }

    #[test]
    fn tokens_verify_only_themselves_and_are_stored_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        let store = TokenStore::open(&path).unwrap();
        let token = store.create("buyer-system", Role::Buyer).unwrap();
        assert_eq!(
            store.verify(&token),
            Some(Principal {
                name: "buyer-system".into(),
                role: Role::Buyer
            })
        );
        assert_eq!(store.verify("assay_wrong"), None);
        let file = std::fs::read_to_string(&path).unwrap();
        assert!(
            !file.contains(&token),
            "the token itself must never be stored"
        );
        let reopened = TokenStore::open(&path).unwrap();
        assert!(reopened.verify(&token).is_some());
        let (who, scram) = reopened.scram_secret("buyer-system").unwrap();
        assert_eq!(who.role, Role::Buyer);
        assert_eq!(scram.salt().len(), 16);
        assert_eq!(
            scram.salted_password(),
            datafusion_postgres::pgwire::api::auth::sasl::scram::gen_salted_password(
                &token,
                &scram.salt(),
                scram.iterations()
            ),
            "the stored secret is SCRAM's salted password of the token"
        );
        assert!(reopened.scram_secret("nobody").is_none());
        assert!(matches!(
            reopened.create("buyer-system", Role::Admin),
            Err(TokenError::NameTaken(_))
        ));
        assert!(matches!(
            reopened.create("bad name", Role::Admin),
            Err(TokenError::BadName(_))
        ));
    }

    #[test]
    fn a_revoked_token_stops_working_for_a_store_that_read_the_file_before() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        let cli = TokenStore::open(&path).unwrap();
        let buyer = cli.create("buyer-system", Role::Buyer).unwrap();
        let ops = cli.create("ops", Role::Admin).unwrap();
        let server = TokenStore::open(&path).unwrap();
        assert!(server.verify(&buyer).is_some());
        let names: Vec<_> = cli.list().into_iter().map(|t| (t.name, t.role)).collect();
        assert_eq!(
            names,
            [
                ("buyer-system".into(), Role::Buyer),
                ("ops".into(), Role::Admin)
            ]
        );

        cli.revoke("buyer-system").unwrap();
        assert_eq!(server.verify(&buyer), None, "the server rereads the file");
        assert!(server.scram_secret("buyer-system").is_none());
        assert!(server.verify(&ops).is_some(), "other tokens are untouched");
        assert!(matches!(
            cli.revoke("buyer-system"),
            Err(TokenError::Unknown(_))
        ));
        assert_eq!(server.list().len(), 1);
    }
}
