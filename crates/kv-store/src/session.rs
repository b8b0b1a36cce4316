//! Client sessions: exactly-once writes for retried commands.
//!
//! Each session remembers only its latest write (sequence number and response): a client
//! sends one write at a time and moves on only once it has the answer, so it never needs
//! an older response again. This keeps a session at a fixed, small size (responses carry
//! key metadata, never values).
//!
//! The table holds at most `sessions_max` sessions. When a new one would pass the limit,
//! the session whose last write applied at the lowest log index goes. The log index is the
//! same on every replica, so every replica evicts the same session.
//!
//! An evicted session must never apply a write again, not even a late duplicate of its
//! first write (sequence 1), which looks exactly like a new session's first write. Client
//! ids therefore order sessions by when they started ([`Session::client_id_at`]: the start
//! time in the high bits), and the table keeps an eviction watermark, the highest client id
//! it ever evicted. A session it does not hold whose client id is at or below the watermark
//! is refused as expired whatever its sequence. The watermark only depends on the log, so
//! every replica refuses the same writes; clocks only matter for liveness (a client whose
//! clock runs far behind may see its new session refused, and starts another).
//!
//! [`Session::client_id_at`]: crate::Session::client_id_at

use std::collections::BTreeMap;

use raft_core::LogIndex;

use crate::response::{Rejection, Response};

/// One client's session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SessionRecord {
    /// The latest write's sequence number.
    pub(crate) last_sequence: u64,
    /// The latest write's response, answered again to a retry.
    pub(crate) last_response: Response,
    /// The log index of the latest write; orders eviction.
    pub(crate) last_index: LogIndex,
}

/// What to do with a write, given its session.
#[derive(Debug)]
pub(crate) enum SessionCheck {
    /// Apply it (a new write).
    Apply,
    /// Do not apply it; answer this (a retry's original response, or a refusal).
    Answer(Response),
}

/// The session table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Sessions {
    /// Sessions by client id.
    by_client: BTreeMap<u64, SessionRecord>,
    /// Client ids by the log index of their latest write: the first is evicted first. Each
    /// index holds one entry, so the keys are unique.
    by_last_index: BTreeMap<LogIndex, u64>,
    /// The highest client id ever evicted: no session at or below it may start again.
    evicted_client_id_max: Option<u64>,
}

impl Sessions {
    /// How many sessions there are.
    pub(crate) fn len(&self) -> usize {
        self.by_client.len()
    }

    /// The sessions in client id order.
    pub(crate) fn iter(&self) -> impl ExactSizeIterator<Item = (&u64, &SessionRecord)> {
        self.by_client.iter()
    }

    /// Decides whether a write from `client_id` numbered `sequence` applies.
    pub(crate) fn check(&self, client_id: u64, sequence: u64) -> SessionCheck {
        match self.by_client.get(&client_id) {
            Some(session) if sequence == session.last_sequence => {
                SessionCheck::Answer(session.last_response.clone())
            }
            Some(session) if sequence < session.last_sequence => {
                SessionCheck::Answer(Response::Rejected(Rejection::StaleSequence {
                    client_id,
                    sequence,
                    last_sequence: session.last_sequence,
                }))
            }
            Some(_) => SessionCheck::Apply,
            None if sequence == 1 && !self.was_evicted(client_id) => SessionCheck::Apply,
            None => SessionCheck::Answer(Response::Rejected(Rejection::SessionExpired {
                client_id,
                sequence,
            })),
        }
    }

    /// Whether a session of `client_id` may have existed and been evicted: its id is at or
    /// below the eviction watermark.
    fn was_evicted(&self, client_id: u64) -> bool {
        self.evicted_client_id_max.is_some_and(|watermark| client_id <= watermark)
    }

    /// The highest client id ever evicted, for the snapshot.
    pub(crate) fn evicted_client_id_max(&self) -> Option<u64> {
        self.evicted_client_id_max
    }

    /// Sets the eviction watermark read from a snapshot.
    pub(crate) fn restore_evicted_client_id_max(&mut self, watermark: Option<u64>) {
        self.evicted_client_id_max = watermark;
    }

    /// Records that `client_id`'s write `sequence` applied at `index` with `response`,
    /// evicting the least recently active sessions to stay within `sessions_max`.
    pub(crate) fn record(
        &mut self,
        client_id: u64,
        sequence: u64,
        index: LogIndex,
        response: Response,
        sessions_max: u64,
    ) {
        let session =
            SessionRecord { last_sequence: sequence, last_response: response, last_index: index };
        if let Some(previous) = self.by_client.insert(client_id, session) {
            self.by_last_index.remove(&previous.last_index);
        }
        self.by_last_index.insert(index, client_id);
        self.evict_to(sessions_max);
    }

    /// Marks `client_id`'s session active at `index` (a retry or a stale write arrived),
    /// so that a client still retrying is not evicted first.
    pub(crate) fn touch(&mut self, client_id: u64, index: LogIndex) {
        if let Some(session) = self.by_client.get_mut(&client_id) {
            self.by_last_index.remove(&session.last_index);
            session.last_index = index;
            self.by_last_index.insert(index, client_id);
        }
    }

    /// Evicts the least recently active sessions until at most `sessions_max` remain.
    fn evict_to(&mut self, sessions_max: u64) {
        while self.by_client.len() as u64 > sessions_max {
            let Some((_, client_id)) = self.by_last_index.pop_first() else {
                break;
            };
            self.by_client.remove(&client_id);
            let watermark = self.evicted_client_id_max.map_or(client_id, |max| max.max(client_id));
            self.evicted_client_id_max = Some(watermark);
            tracing::debug!(client_id, "evicted the least recently active client session");
        }
    }

    /// Inserts a session read from a snapshot; the caller checks client ids ascend.
    /// Returns false when another session already has the same last index (a corrupt
    /// snapshot).
    pub(crate) fn insert_restored(&mut self, client_id: u64, session: SessionRecord) -> bool {
        if self.by_last_index.insert(session.last_index, client_id).is_some() {
            return false;
        }
        self.by_client.insert(client_id, session);
        true
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn first_write_of_an_unknown_client_applies() {
        let sessions = Sessions::default();
        assert!(matches!(sessions.check(1, 1), SessionCheck::Apply));
    }

    #[test]
    fn unknown_client_past_its_first_write_has_an_expired_session() {
        let sessions = Sessions::default();
        let SessionCheck::Answer(response) = sessions.check(1, 5) else { panic!("applied") };
        assert_eq!(
            response,
            Response::Rejected(Rejection::SessionExpired { client_id: 1, sequence: 5 })
        );
    }

    #[test]
    fn eviction_removes_the_least_recently_active_session() {
        let mut sessions = Sessions::default();
        sessions.record(10, 1, LogIndex(1), Response::NoOp, 2);
        sessions.record(20, 1, LogIndex(2), Response::NoOp, 2);
        // Client 10 writes again, so client 20 is now the least recently active.
        sessions.record(10, 2, LogIndex(3), Response::NoOp, 2);
        sessions.record(30, 1, LogIndex(4), Response::NoOp, 2);
        let clients: Vec<u64> = sessions.iter().map(|(&id, _)| id).collect();
        assert_eq!(clients, vec![10, 30]);
        assert_eq!(sessions.by_last_index.len(), 2);
    }

    #[test]
    fn first_write_at_or_below_the_eviction_watermark_is_expired() {
        let mut sessions = Sessions::default();
        sessions.record(10, 1, LogIndex(1), Response::NoOp, 1);
        sessions.record(20, 1, LogIndex(2), Response::NoOp, 1);
        assert_eq!(sessions.evicted_client_id_max(), Some(10));
        assert!(matches!(sessions.check(10, 1), SessionCheck::Answer(_)));
        assert!(matches!(sessions.check(5, 1), SessionCheck::Answer(_)));
        assert!(matches!(sessions.check(11, 1), SessionCheck::Apply));
        // Evicting a lower id later never lowers the watermark.
        sessions.record(3, 1, LogIndex(3), Response::NoOp, 1);
        sessions.record(30, 1, LogIndex(4), Response::NoOp, 1);
        assert_eq!(sessions.evicted_client_id_max(), Some(20));
    }

    #[test]
    fn touching_a_session_protects_it_from_eviction() {
        let mut sessions = Sessions::default();
        sessions.record(10, 1, LogIndex(1), Response::NoOp, 2);
        sessions.record(20, 1, LogIndex(2), Response::NoOp, 2);
        sessions.touch(10, LogIndex(3));
        sessions.record(30, 1, LogIndex(4), Response::NoOp, 2);
        let clients: Vec<u64> = sessions.iter().map(|(&id, _)| id).collect();
        assert_eq!(clients, vec![10, 30]);
    }
}
