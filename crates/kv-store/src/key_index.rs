//! The store's keys: a hash map for point lookups beside an ordered set for ranges.
//!
//! A put or delete finds its key with one hash and one or two key comparisons. In a
//! `BTreeMap` it took a score of comparisons, each following a pointer into some other
//! entry's buffer (a cache miss apiece): the search alone was about 5% of the servers' CPU
//! at 256 clients. Ranges and snapshots walk the ordered set, which changes only when a key
//! is created or deleted.
//!
//! Nothing iterates the hash map: its order differs from process to process, and every
//! replica must reach the same state byte for byte.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;

use bytes::Bytes;

use crate::store::Record;

/// Every key with its record, found by hash or walked in key order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct KeyIndex {
    records: HashMap<Bytes, Record>,
    /// The same keys as `records`, in order.
    order: BTreeSet<Bytes>,
}

impl KeyIndex {
    /// How many keys there are.
    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether there are none.
    pub(crate) fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// `key`'s record.
    pub(crate) fn get(&self, key: &[u8]) -> Option<&Record> {
        self.records.get(key)
    }

    /// `key` as stored, with its record.
    pub(crate) fn get_key_value(&self, key: &[u8]) -> Option<(&Bytes, &Record)> {
        self.records.get_key_value(key)
    }

    /// `key`'s record, to change in place (the key stays).
    pub(crate) fn get_mut(&mut self, key: &[u8]) -> Option<&mut Record> {
        self.records.get_mut(key)
    }

    /// Whether `key` is present.
    pub(crate) fn contains_key(&self, key: &[u8]) -> bool {
        self.records.contains_key(key)
    }

    /// Adds `key`, which must not be present.
    pub(crate) fn insert_new(&mut self, key: Bytes, record: Record) {
        debug_assert!(!self.records.contains_key(&key), "the key is new");
        self.order.insert(key.clone());
        self.records.insert(key, record);
    }

    /// Removes `key` and returns it as stored with its record.
    pub(crate) fn remove_entry(&mut self, key: &[u8]) -> Option<(Bytes, Record)> {
        let removed = self.records.remove_entry(key)?;
        self.order.remove(key);
        Some(removed)
    }

    /// The keys within `bounds` with their records, in key order.
    pub(crate) fn range<'a>(
        &'a self,
        bounds: (Bound<&'a [u8]>, Bound<&'a [u8]>),
    ) -> impl DoubleEndedIterator<Item = (&'a Bytes, &'a Record)> + 'a {
        self.order.range::<[u8], _>(bounds).filter_map(|key| self.records.get_key_value(key))
    }

    /// Every key with its record, in key order.
    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = (&Bytes, &Record)> {
        self.order.iter().filter_map(|key| self.records.get_key_value(key))
    }
}

impl From<BTreeMap<Bytes, Record>> for KeyIndex {
    fn from(map: BTreeMap<Bytes, Record>) -> KeyIndex {
        let order = map.keys().cloned().collect();
        KeyIndex { records: map.into_iter().collect(), order }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::response::KeyMeta;

    fn record(version: u64) -> Record {
        Record {
            value: Bytes::from(format!("v{version}")),
            meta: KeyMeta { version, ..KeyMeta::default() },
        }
    }

    #[test]
    fn lookups_ranges_and_order_agree_with_a_btree_map() {
        let mut index = KeyIndex::default();
        let mut model = BTreeMap::new();
        for (step, key) in ["m", "a", "z", "b", "y", "a2"].into_iter().enumerate() {
            let key = Bytes::from(key);
            index.insert_new(key.clone(), record(step as u64));
            model.insert(key, record(step as u64));
        }
        index.get_mut(b"b").unwrap().meta.version = 99;
        model.get_mut(b"b".as_slice()).unwrap().meta.version = 99;
        assert_eq!(index.remove_entry(b"z").map(|(key, _)| key), Some(Bytes::from("z")));
        model.remove(b"z".as_slice());
        assert!(index.remove_entry(b"absent").is_none());
        assert_eq!(index.len(), model.len());
        assert!(index.contains_key(b"a2") && !index.contains_key(b"z"));
        assert_eq!(index.get(b"b").map(|record| record.meta.version), Some(99));
        let walked: Vec<_> = index.iter().collect();
        assert_eq!(walked, model.iter().collect::<Vec<_>>());
        let bounds = (Bound::Included(b"a".as_slice()), Bound::Excluded(b"m".as_slice()));
        let ranged: Vec<_> = index.range(bounds).map(|(key, _)| key.clone()).collect();
        assert_eq!(ranged, ["a", "a2", "b"].map(Bytes::from));
        let backwards: Vec<_> = index.range(bounds).rev().map(|(key, _)| key.clone()).collect();
        assert_eq!(backwards, ["b", "a2", "a"].map(Bytes::from));
        assert_eq!(KeyIndex::from(model.clone()), index);
        assert!(KeyIndex::default().is_empty());
    }
}
