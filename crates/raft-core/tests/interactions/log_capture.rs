//! Collects `raft-core`'s tracing events so a script can print them (`log-level info`).
//!
//! A minimal `tracing::Subscriber`, so the test needs no subscriber crate: it keeps each
//! event as one line, `INFO became leader term=1`, for the environment to print under the
//! node it was driving. The `node` field is left out: the environment names the node.

use std::fmt;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// Captured events, shared between the subscriber and the environment.
pub type CapturedLines = Arc<Mutex<Vec<(Level, String)>>>;

/// The subscriber: every event at `DEBUG` or above goes to `lines`.
pub struct Capture {
    /// Where events go.
    pub lines: CapturedLines,
}

impl Subscriber for Capture {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        *metadata.level() <= Level::DEBUG
    }

    fn new_span(&self, _attributes: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _span: &Id, _values: &Record<'_>) {}

    fn record_follows_from(&self, _span: &Id, _follows: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut line = fields.message;
        for (name, value) in fields.others {
            line.push_str(&format!(" {name}={value}"));
        }
        let level = *event.metadata().level();
        self.lines.lock().expect("no panic while holding the lines").push((level, line));
    }

    fn enter(&self, _span: &Id) {}

    fn exit(&self, _span: &Id) {}
}

/// An event's message and its other fields, in the order they were written.
#[derive(Default)]
struct Fields {
    message: String,
    others: Vec<(&'static str, String)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.record_debug(field, &format_args!("{value}"));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            "node" => {}
            name => self.others.push((name, format!("{value:?}"))),
        }
    }
}
