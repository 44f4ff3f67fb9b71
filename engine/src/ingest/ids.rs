//! The set of event ids a day already has, for dropping duplicates.
//!
//! Ids live back to back in one byte buffer and the table holds only where each one
//! starts: an owned `String` per id made allocation and freeing about a sixth of
//! ingest's time. Lookups compare the stored bytes, so the set is exact: two ids that
//! share a hash are still told apart.

use hashbrown::HashTable;

#[derive(Default)]
pub(crate) struct IdSet {
    bytes: Vec<u8>,
    /// (start in `bytes`, length) of each id.
    table: HashTable<(usize, u32)>,
    hasher: ahash::RandomState,
}

impl IdSet {
    /// Adds `id`; false when it was there already.
    pub(crate) fn insert(&mut self, id: &str) -> bool {
        let Self {
            bytes,
            table,
            hasher,
        } = self;
        let hash = hasher.hash_one(id.as_bytes());
        let stored = |&(start, len): &(usize, u32)| &bytes[start..start + len as usize];
        if table.find(hash, |e| stored(e) == id.as_bytes()).is_some() {
            return false;
        }
        let len = u32::try_from(id.len()).expect("an event id is shorter than 4 GiB");
        let entry = (bytes.len(), len);
        bytes.extend_from_slice(id.as_bytes());
        table.insert_unique(hash, entry, |&(start, len)| {
            hasher.hash_one(&bytes[start..start + len as usize])
        });
        true
    }

    /// Makes room for `more` ids of about `bytes_each` bytes, so a day's inserts do not
    /// rehash the table over and over.
    pub(crate) fn reserve(&mut self, more: usize, bytes_each: usize) {
        let Self {
            bytes,
            table,
            hasher,
        } = self;
        bytes.reserve(more * bytes_each);
        table.reserve(more, |&(start, len)| {
            hasher.hash_one(&bytes[start..start + len as usize])
        });
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_each_id_once_across_growth() {
        let mut ids = IdSet::default();
        for i in 0..50_000 {
            assert!(ids.insert(&format!("E{i}")));
        }
        for i in 0..50_000 {
            assert!(!ids.insert(&format!("E{i}")), "E{i} is there already");
        }
        assert!(ids.insert(""), "the empty id is an id like any other");
        assert!(!ids.insert(""));
        assert!(ids.insert("E1 "), "no trimming: a different id");
        assert_eq!(ids.len(), 50_002);
    }
}
