//! How entries, messages, `Ready`s and memberships are printed. The harness has its own
//! formatter so that a change of a `Debug` derive in `raft-core` never rewrites a script.

use std::fmt::Write as _;

use bytes::Bytes;
use raft_core::{
    AppendResult, Campaign, Entry, EntryPayload, Membership, Message, MessageBody, NodeId,
};
use raft_core::{Ready, Snapshot};

/// `(1,2,3)`: a set of node ids.
pub fn ids_text<'a>(ids: impl IntoIterator<Item = &'a NodeId>) -> String {
    let ids: Vec<String> = ids.into_iter().map(ToString::to_string).collect();
    format!("({})", ids.join(","))
}

/// `voters=(1,2,3) learners=(4)`.
pub fn membership_text(membership: &Membership) -> String {
    format!("voters={} learners={}", ids_text(&membership.voters), ids_text(&membership.learners))
}

/// Bytes as a quoted string (the scripts only ever carry text).
pub fn bytes_text(bytes: &Bytes) -> String {
    format!("{:?}", String::from_utf8_lossy(bytes))
}

/// `2@1 "x=1"`: the entry's index@term and its payload.
pub fn entry_text(entry: &Entry) -> String {
    let payload = match &entry.payload {
        EntryPayload::Empty => "empty".to_string(),
        EntryPayload::Command(bytes) => bytes_text(bytes),
        EntryPayload::Membership(membership) => membership_text(membership),
    };
    format!("{} {payload}", entry.log_id)
}

/// `last=11@1 voters=(1,2,3) learners=() data="a,b"`.
pub fn snapshot_text(snapshot: &Snapshot) -> String {
    format!(
        "last={} {} data={}",
        snapshot.meta.last_log_id,
        membership_text(&snapshot.meta.membership),
        bytes_text(&snapshot.data)
    )
}

/// `1->2 term=1 append_request prev=0@0 commit=0 entries=[1@1 empty]`.
pub fn message_text(message: &Message) -> String {
    let head =
        format!("{}->{} term={} {}", message.from, message.to, message.term, message.body.kind());
    head + &body_detail(&message.body)
}

/// The fields of a message body worth reading, with a leading space (or nothing).
fn body_detail(body: &MessageBody) -> String {
    match body {
        MessageBody::VoteRequest { last_log_id, campaign, .. } => {
            let transfer = if *campaign == Campaign::Transfer { " transfer" } else { "" };
            format!(" last={last_log_id}{transfer}")
        }
        MessageBody::VoteResponse { granted, .. } => format!(" granted={granted}"),
        MessageBody::AppendRequest { prev_log_id, entries, leader_commit, answer_wanted } => {
            let entries: Vec<String> = entries.iter().map(entry_text).collect();
            let quiet = if *answer_wanted { "" } else { " unanswered" };
            format!(
                " prev={prev_log_id} commit={leader_commit} entries=[{}]{quiet}",
                entries.join(", ")
            )
        }
        MessageBody::AppendResponse { result: AppendResult::Success { match_index } } => {
            format!(" match={match_index}")
        }
        MessageBody::AppendResponse { result: AppendResult::Reject { rejected_index, hint } } => {
            format!(" rejected={rejected_index} hint={hint:?}")
        }
        MessageBody::Heartbeat { commit_index, round } => {
            format!(" commit={commit_index} round={round}")
        }
        MessageBody::HeartbeatResponse { round } => format!(" round={round}"),
        MessageBody::InstallSnapshot { meta, offset, total_bytes, data } => format!(
            " last={} offset={offset} total={total_bytes} data={}",
            meta.last_log_id,
            bytes_text(data)
        ),
        MessageBody::InstallSnapshotResponse { last_log_id, received_bytes } => {
            format!(" last={last_log_id} received={received_bytes}")
        }
        MessageBody::ReadIndexRequest { read_id } => format!(" read={}", read_id.0),
        MessageBody::ReadIndexResponse { read_id, read_index } => {
            format!(" read={} index={read_index}", read_id.0)
        }
        MessageBody::TimeoutNow => String::new(),
    }
}

/// Every field of a `Ready`, indented, in the order the driver handles them; empty fields
/// print nothing. The caller prints the `> ID ready` header.
pub fn ready_text(ready: &Ready) -> String {
    let mut out = String::new();
    if ready.is_empty() {
        out.push_str("  (an empty Ready)\n");
    }
    let mut line = |text: String| writeln!(out, "  {text}").expect("writing to a String");
    if let Some(soft) = &ready.soft_state {
        let leader = soft.leader.map_or("none".to_string(), |leader| leader.to_string());
        line(format!("role={} term={} leader={leader}", soft.role, soft.term));
    }
    if let Some(snapshot) = &ready.snapshot_to_install {
        line(format!("install snapshot {}", snapshot_text(snapshot)));
    }
    if let Some(hard) = &ready.hard_state {
        let vote = hard.voted_for.map_or("none".to_string(), |vote| vote.to_string());
        let commit = hard.commit_index;
        line(format!("persist hard state term={} vote={vote} commit={commit}", hard.term));
    }
    for entry in &ready.entries_to_persist {
        line(format!("persist {}", entry_text(entry)));
    }
    for message in &ready.messages_now {
        line(format!("send {}", message_text(message)));
    }
    for message in &ready.messages_after_persist {
        line(format!("send after persist {}", message_text(message)));
    }
    for entry in &ready.committed_entries {
        line(format!("apply {}", entry_text(entry)));
    }
    for read in &ready.read_states {
        line(format!("read state read={} index={}", read.read_id.0, read.read_index));
    }
    out
}
