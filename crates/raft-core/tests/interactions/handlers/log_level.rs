//! `log-level none|warn|info|debug`: how much the following commands print.
//!
//! `none` prints only errors (to set a scene up silently); `warn`, the default, prints the
//! harness's output; `info` and `debug` add `raft-core`'s own events of that level.

use crate::arguments::Arguments;
use crate::environment::{Environment, LogLevel};

/// Runs `log-level`.
pub fn log_level(environment: &mut Environment, arguments: &Arguments) {
    environment.level = match arguments.word(0) {
        Some("none") => LogLevel::None,
        Some("warn") => LogLevel::Warn,
        Some("info") => LogLevel::Info,
        Some("debug") => LogLevel::Debug,
        other => panic!("log-level {other:?}: expected none, warn, info or debug"),
    };
}
