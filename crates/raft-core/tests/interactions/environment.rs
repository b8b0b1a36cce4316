//! The hand-driven cluster a script runs against, and what the script prints.
//!
//! Nothing happens unless a command says so: messages wait in `queue` until delivered, and
//! a node's `Ready` waits until processed. Processing persists instantly: the environment
//! reports the write with `on_persisted` at once and queues every message of the `Ready`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;
use raft_core::{Entry, EntryPayload, LogIndex, Message, Node, NodeId, Snapshot};
use tracing::Level;

use crate::log_capture::CapturedLines;
use crate::text::{message_text, ready_text};

/// How much a script prints, from `log-level`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Nothing but errors: for setting a scene up silently.
    None,
    /// The harness's output (`Ready`s, messages, status) and `raft-core`'s warnings. The
    /// default.
    Warn,
    /// Also `raft-core`'s info events: role, term, membership and transfer decisions.
    Info,
    /// Also `raft-core`'s debug events: every message received and why one was ignored.
    Debug,
}

impl LogLevel {
    /// Whether a `raft-core` event at `level` is printed.
    fn shows(self, level: Level) -> bool {
        match self {
            LogLevel::None => false,
            LogLevel::Warn => level <= Level::WARN,
            LogLevel::Info => level <= Level::INFO,
            LogLevel::Debug => level <= Level::DEBUG,
        }
    }
}

/// A node's application: the commands it applied, each with its index. A snapshot's data
/// is its commands joined by commas (so script commands contain no commas).
#[derive(Default)]
pub struct StateMachine {
    commands: Vec<(LogIndex, String)>,
}

impl StateMachine {
    fn apply(&mut self, entries: &[Entry]) {
        for entry in entries {
            if let EntryPayload::Command(bytes) = &entry.payload {
                let command = String::from_utf8_lossy(bytes).into_owned();
                self.commands.push((entry.log_id.index, command));
            }
        }
    }

    fn restore(&mut self, snapshot: &Snapshot) {
        let index = snapshot.meta.last_log_id.index;
        let text = String::from_utf8_lossy(&snapshot.data).into_owned();
        let commands = text.split(',').filter(|command| !command.is_empty());
        self.commands = commands.map(|command| (index, command.to_string())).collect();
    }

    /// The state after applying up to `index`, as snapshot data.
    pub fn data_at(&self, index: LogIndex) -> Bytes {
        let upto = self.commands.iter().filter(|(applied, _)| *applied <= index);
        let commands: Vec<&str> = upto.map(|(_, command)| command.as_str()).collect();
        Bytes::from(commands.join(","))
    }
}

/// What became of a delivered message.
pub enum Delivery {
    /// The recipient stepped it.
    Stepped,
    /// The link is cut.
    Dropped,
    /// No such node (yet): lost, as on a real network.
    Lost,
}

/// The cluster, the network between its nodes, and the script's output.
pub struct Environment {
    /// The nodes, by id.
    pub nodes: BTreeMap<NodeId, Node>,
    /// Each node's application.
    pub machines: BTreeMap<NodeId, StateMachine>,
    /// Messages sent and not yet delivered, in send order.
    pub queue: VecDeque<Message>,
    /// Links that drop everything: (from, to).
    pub cut: BTreeSet<(NodeId, NodeId)>,
    /// The current command's output.
    output: String,
    /// How much is printed.
    pub level: LogLevel,
    /// Indentation for `raft-core`'s events: inside a `> ID ready` block or not.
    indent: &'static str,
    /// A line to print before the next printed `raft-core` event: the message whose
    /// delivery logged it, inside `stabilize` (which does not print deliveries).
    event_header: Option<String>,
    captured: CapturedLines,
}

impl Environment {
    /// An environment without nodes, printing `raft-core`'s events from `captured`.
    pub fn new(captured: CapturedLines) -> Environment {
        Environment {
            nodes: BTreeMap::new(),
            machines: BTreeMap::new(),
            queue: VecDeque::new(),
            cut: BTreeSet::new(),
            output: String::new(),
            level: LogLevel::Warn,
            indent: "",
            event_header: None,
            captured,
        }
    }

    /// Takes the output printed since the last call.
    pub fn take_output(&mut self) -> String {
        std::mem::take(&mut self.output)
    }

    /// Prints harness output (one or more whole lines), unless the level is `none`.
    pub fn print(&mut self, text: &str) {
        if self.level > LogLevel::None && !text.is_empty() {
            self.output.push_str(text);
            if !text.ends_with('\n') {
                self.output.push('\n');
            }
        }
    }

    /// Prints an error: always, even at `log-level none`.
    pub fn error(&mut self, text: &str) {
        self.output.push_str(&format!("error: {text}\n"));
    }

    /// Runs `action` on node `id`, then prints the events it logged under that node's id.
    pub fn with_node<T>(&mut self, id: NodeId, action: impl FnOnce(&mut Node) -> T) -> T {
        let node = self.nodes.get_mut(&id).unwrap_or_else(|| panic!("no node {id}"));
        let result = action(node);
        let lines = std::mem::take(&mut *self.captured.lock().expect("not poisoned"));
        for (level, line) in lines {
            if self.level.shows(level) {
                if let Some(header) = self.event_header.take() {
                    self.output.push_str(&header);
                }
                self.output.push_str(&format!("{}{level} {id} {line}\n", self.indent));
            }
        }
        self.event_header = None;
        result
    }

    /// Takes one `Ready` from `id` (if it has one), prints it, persists it, applies it and
    /// queues its messages. Returns whether there was one.
    pub fn process_ready(&mut self, id: NodeId) -> bool {
        if !self.nodes.get(&id).is_some_and(Node::has_ready) {
            return false;
        }
        self.print(&format!("> {id} ready"));
        let outer_indent = std::mem::replace(&mut self.indent, "  ");
        let ready = self.with_node(id, Node::ready);
        self.print(&ready_text(&ready));
        let machine = self.machines.entry(id).or_default();
        if let Some(snapshot) = &ready.snapshot_to_install {
            machine.restore(snapshot);
        }
        machine.apply(&ready.committed_entries);
        self.queue.extend(ready.messages_now);
        self.queue.extend(ready.messages_after_persist);
        if let Some(last) = ready.entries_to_persist.last() {
            let last = last.log_id;
            self.with_node(id, |node| node.on_persisted(last));
        }
        self.indent = outer_indent;
        true
    }

    /// Delivers one message unless its link is cut or its recipient does not exist.
    pub fn deliver(&mut self, message: Message) -> Delivery {
        if self.cut.contains(&(message.from, message.to)) {
            return Delivery::Dropped;
        }
        if !self.nodes.contains_key(&message.to) {
            return Delivery::Lost;
        }
        let to = message.to;
        let text = message_text(&message);
        if let Err(error) = self.with_node(to, |node| node.step(message)) {
            self.error(&format!("{text}: {error}"));
        }
        Delivery::Stepped
    }

    /// Delivers one message like [`Environment::deliver`]; any event it logs is printed
    /// under a `> ID receiving MESSAGE` line.
    pub fn deliver_with_header(&mut self, message: Message) -> Delivery {
        self.event_header =
            Some(format!("> {} receiving {}\n", message.to, message_text(&message)));
        self.deliver(message)
    }

    /// Sets the indentation of `raft-core`'s events (inside a block or not).
    pub fn set_indent(&mut self, indent: &'static str) {
        self.indent = indent;
    }
}
