//! `process-ready ID...`: takes one `Ready` from each node, prints every field, persists
//! it (instantly: `on_persisted` at once), applies it and queues its messages.

use crate::arguments::Arguments;
use crate::environment::Environment;

/// Runs `process-ready`.
pub fn process_ready(environment: &mut Environment, arguments: &Arguments) {
    for id in arguments.nodes() {
        if !environment.process_ready(id) {
            environment.print(&format!("> {id} has no ready"));
        }
    }
}
