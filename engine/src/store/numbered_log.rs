//! The protocol of assay's append-only logs (overrides, reorder approvals, the webhook
//! outbox): each entry is one JSON file, `<dir>/<seq>.json`, created only if its number
//! is free ([`Storage::create`]), so two writers never overwrite each other and an entry
//! is durable before it is acknowledged. Stray temporary files are ignored.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{EngineError, Result};
use crate::storage::Storage;

/// Every entry of the log in `dir`, oldest first; `what` names an entry in errors.
///
/// # Errors
/// The log cannot be listed or read, or an entry cannot be parsed (named).
pub fn read_all<T: DeserializeOwned>(
    storage: &Storage,
    dir: &str,
    what: &str,
) -> Result<Vec<(u64, T)>> {
    let mut keys: Vec<(u64, String)> = storage
        .list(dir)?
        .into_iter()
        .filter_map(|e| {
            let seq = e.name().strip_suffix(".json")?.parse::<u64>().ok()?;
            Some((seq, e.key))
        })
        .collect();
    keys.sort();
    keys.into_iter()
        .map(|(seq, key)| {
            let text = storage.read(&key)?;
            let entry = serde_json::from_slice(&text).map_err(|e| EngineError::Store {
                path: storage.display(&key),
                message: format!("unreadable {what}: {e}"),
            })?;
            Ok((seq, entry))
        })
        .collect()
}

/// Writes `entry` under the first free number from `seq` on (another process may have
/// taken `seq`); returns the number it took.
///
/// # Errors
/// The entry cannot be written: nothing was recorded.
pub fn append<T: Serialize>(storage: &Storage, dir: &str, mut seq: u64, entry: &T) -> Result<u64> {
    let body =
        bytes::Bytes::from(
            serde_json::to_vec_pretty(entry).map_err(|e| EngineError::Store {
                path: storage.display(dir),
                message: e.to_string(),
            })?,
        );
    while !storage.create(&format!("{dir}/{seq:012}.json"), body.clone())? {
        seq += 1;
    }
    Ok(seq)
}
