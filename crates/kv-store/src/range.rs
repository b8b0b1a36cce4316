//! Key ranges as etcd's v3 API names them: a `key` and a `range_end`.

use std::ops::Bound;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// The `range_end` that means "every key from `key` on" (etcd's `\0`).
const FROM_KEY: &[u8] = &[0];

/// A range's bounds over borrowed keys, as `BTreeMap::range` takes them.
pub(crate) type KeyBounds<'a> = (Bound<&'a [u8]>, Bound<&'a [u8]>);

/// A set of keys, as etcd's `key` and `range_end` fields describe one.
///
/// - `range_end` empty: the single key `key`;
/// - `range_end == b"\0"`: every key at or after `key`; with `key == b"\0"` as well, every
///   key (including the empty key, which etcd never stores but this store may);
/// - otherwise: the half-open interval `[key, range_end)`, empty when
///   `range_end <= key`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct KeyRange {
    /// The first key of the range (the only one when `range_end` is empty).
    pub key: Bytes,
    /// Where the range ends, exclusive; see the type's documentation for the two special
    /// values.
    pub range_end: Bytes,
}

impl KeyRange {
    /// The single key `key`.
    #[must_use]
    pub fn single(key: impl Into<Bytes>) -> KeyRange {
        KeyRange { key: key.into(), range_end: Bytes::new() }
    }

    /// Every key that starts with `prefix`: `range_end` is `prefix` with its last byte
    /// incremented after dropping trailing `0xff` bytes, as etcd's `WithPrefix`. An empty or
    /// all-`0xff` prefix has no such end, so its range runs from `prefix` to the last key.
    #[must_use]
    pub fn prefix(prefix: impl Into<Bytes>) -> KeyRange {
        let key = prefix.into();
        let mut end = key.to_vec();
        while let Some(last) = end.pop() {
            if last < 0xff {
                end.push(last + 1);
                return KeyRange { key, range_end: Bytes::from(end) };
            }
        }
        KeyRange { key, range_end: Bytes::from_static(FROM_KEY) }
    }

    /// Every key: `key` and `range_end` both `b"\0"`, as etcd clients send it.
    #[must_use]
    pub fn all() -> KeyRange {
        KeyRange { key: Bytes::from_static(FROM_KEY), range_end: Bytes::from_static(FROM_KEY) }
    }

    /// Every key at or after `key` (etcd's `WithFromKey`).
    #[must_use]
    pub fn from_key(key: impl Into<Bytes>) -> KeyRange {
        KeyRange { key: key.into(), range_end: Bytes::from_static(FROM_KEY) }
    }

    /// Whether `key` lies in the range.
    #[must_use]
    pub fn contains(&self, key: &[u8]) -> bool {
        if self.range_end.is_empty() {
            return key == self.key.as_ref();
        }
        if self.range_end.as_ref() == FROM_KEY {
            return self.is_all() || key >= self.key.as_ref();
        }
        key >= self.key.as_ref() && key < self.range_end.as_ref()
    }

    /// Whether the range is a single key.
    #[must_use]
    pub fn is_single(&self) -> bool {
        self.range_end.is_empty()
    }

    /// Whether the range holds every key.
    fn is_all(&self) -> bool {
        self.key.as_ref() == FROM_KEY && self.range_end.as_ref() == FROM_KEY
    }

    /// The range as bounds for `BTreeMap::range`; `None` when it holds no key (a bound
    /// pair `BTreeMap::range` would panic on).
    pub(crate) fn bounds(&self) -> Option<KeyBounds<'_>> {
        let key = self.key.as_ref();
        if self.range_end.is_empty() {
            return Some((Bound::Included(key), Bound::Included(key)));
        }
        if self.is_all() {
            return Some((Bound::Unbounded, Bound::Unbounded));
        }
        if self.range_end.as_ref() == FROM_KEY {
            return Some((Bound::Included(key), Bound::Unbounded));
        }
        (key < self.range_end.as_ref())
            .then_some((Bound::Included(key), Bound::Excluded(self.range_end.as_ref())))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn a_single_key_range_holds_only_that_key() {
        let range = KeyRange::single("a");
        assert!(range.contains(b"a"));
        assert!(!range.contains(b"a\0"));
        assert!(!range.contains(b""));
        assert!(range.is_single());
    }

    #[test]
    fn a_prefix_range_ends_after_the_last_key_with_the_prefix() {
        assert_eq!(KeyRange::prefix("ab").range_end, Bytes::from_static(b"ac"));
        assert_eq!(KeyRange::prefix(&b"a\xff"[..]).range_end, Bytes::from_static(b"b"));
        assert_eq!(KeyRange::prefix(&b"\xff\xff"[..]).range_end, Bytes::from_static(b"\0"));
        assert_eq!(KeyRange::prefix("").range_end, Bytes::from_static(b"\0"));
        let range = KeyRange::prefix("ab");
        assert!(range.contains(b"ab") && range.contains(b"ab\xff\xff") && !range.contains(b"ac"));
        assert!(!range.contains(b"aa"));
    }

    #[test]
    fn an_all_0xff_prefix_runs_to_the_last_key() {
        let range = KeyRange::prefix(&b"\xff"[..]);
        assert!(range.contains(b"\xff") && range.contains(b"\xff\xff\x01"));
        assert!(!range.contains(b"\xfe"));
    }

    #[test]
    fn the_all_range_holds_every_key_even_the_empty_one() {
        let range = KeyRange::all();
        assert!(range.contains(b"") && range.contains(b"\0") && range.contains(b"\xff"));
        assert_eq!(range.bounds(), Some((Bound::Unbounded, Bound::Unbounded)));
        assert!(KeyRange::prefix("").contains(b""));
    }

    #[test]
    fn a_from_key_range_holds_the_key_and_everything_after() {
        let range = KeyRange::from_key("m");
        assert!(range.contains(b"m") && range.contains(b"z"));
        assert!(!range.contains(b"l"));
    }

    #[test]
    fn a_backwards_interval_is_empty_and_has_no_bounds() {
        let range = KeyRange { key: Bytes::from_static(b"b"), range_end: Bytes::from_static(b"a") };
        assert!(!range.contains(b"a") && !range.contains(b"b"));
        assert_eq!(range.bounds(), None);
        let same = KeyRange { key: Bytes::from_static(b"b"), range_end: Bytes::from_static(b"b") };
        assert_eq!(same.bounds(), None);
    }
}
