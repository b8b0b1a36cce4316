//! Golden interaction scripts: `testdata/*.txt`, in the manner of etcd's `rafttest`.
//!
//! Each file opens with `#` lines saying what it proves, then blocks of a command, a `----`
//! line and the expected output, separated by blank lines. The runner executes every
//! command against a hand-driven cluster (nothing moves unless a command says so) and
//! compares the output, so a behaviour change shows up as a readable diff of messages and
//! state. To accept a change, run with `REWRITE_TESTDATA=1` and review the diff like code.
//!
//! Commands, one handler each under `handlers/`:
//! - `add-nodes N [voters=(1,2,3)] [learners=(4)] [index=K] [pre-vote=false]
//!   [check-quorum=false] [read-mode=lease] [lease-ticks=N] [snapshot-chunk-bytes=N]`
//! - `campaign ID`, `tick ID [COUNT]`, `tick-election ID`, `tick-heartbeat ID`,
//!   `tick-all [COUNT] [nodes=(1,3)]` (each round ticks every node or those, then stabilizes)
//! - `process-ready ID...`, `deliver-msgs [ID...] [type=KIND] [drop=(ID,...)]`,
//!   `stabilize [ID...]`
//! - `propose ID DATA`, `read-index ID READ`, `transfer-leader from=ID to=ID`,
//!   `compact ID INDEX`, `propose-conf-change ID add-learner=N|add-voter=N|remove=N`
//! - `isolate ID`, `cut FROM TO`, `heal`
//! - `status [ID...]`, `raft-log ID`, `membership [ID...]`
//! - `log-level none|warn|info|debug` (`none` sets a scene up silently; `info` and `debug`
//!   add `raft-core`'s own events)
//!
//! A `Ready` prints as `> ID ready` and one line per item in the order the driver handles
//! them: `role=..` (soft state), `install snapshot ..`, `persist hard state ..`, `persist
//! ENTRY`, `send MESSAGE` (now), `send after persist MESSAGE`, `apply ENTRY`, `read state
//! ..`. An entry is `INDEX@TERM PAYLOAD`; a message `FROM->TO term=T KIND FIELDS`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod arguments;
mod environment;
mod handlers;
mod log_capture;
mod text;

use std::fs;
use std::path::Path;
use std::sync::{Arc, Mutex};

use arguments::Arguments;
use environment::Environment;
use handlers::transfer_leader;
use handlers::{add_nodes, campaign, compact, deliver_msgs, inspect, log_level, network};
use handlers::{process_ready, propose, propose_conf_change, read_index, stabilize, tick};
use log_capture::{Capture, CapturedLines};

/// A command's handler.
type Handler = fn(&mut Environment, &Arguments);

/// The handler of each command name.
fn handler(command: &str) -> Handler {
    match command {
        "add-nodes" => add_nodes::add_nodes,
        "campaign" => campaign::campaign,
        "tick" => tick::tick,
        "tick-election" => tick::tick_election,
        "tick-heartbeat" => tick::tick_heartbeat,
        "tick-all" => tick::tick_all,
        "process-ready" => process_ready::process_ready,
        "deliver-msgs" => deliver_msgs::deliver_msgs,
        "stabilize" => stabilize::stabilize,
        "propose" => propose::propose,
        "read-index" => read_index::read_index,
        "transfer-leader" => transfer_leader::transfer_leader,
        "compact" => compact::compact,
        "propose-conf-change" => propose_conf_change::propose_conf_change,
        "isolate" => network::isolate,
        "cut" => network::cut,
        "heal" => network::heal,
        "status" => inspect::status,
        "raft-log" => inspect::raft_log,
        "membership" => inspect::membership,
        "log-level" => log_level::log_level,
        other => panic!("unknown command {other:?}"),
    }
}

/// Runs one command line and returns what it printed.
fn run_command(environment: &mut Environment, line: &str) -> String {
    let words: Vec<&str> = line.split_whitespace().collect();
    let arguments = Arguments::new(&words[1..]);
    handler(words[0])(environment, &arguments);
    environment.take_output()
}

/// Runs one script and returns the file's text as the runner would write it.
fn run_script(text: &str, captured: CapturedLines) -> String {
    let mut environment = Environment::new(captured);
    let mut output = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if line.starts_with('#') || line.trim().is_empty() {
            output.push_str(line);
            output.push('\n');
            continue;
        }
        // A command, its `----`, then its recorded output up to a blank line (skipped).
        output.push_str(line);
        output.push_str("\n----\n");
        if lines.peek() == Some(&"----") {
            lines.next();
            while lines.peek().is_some_and(|l| !l.trim().is_empty()) {
                lines.next();
            }
        }
        output.push_str(&run_command(&mut environment, line));
    }
    output
}

#[test]
fn interaction_scripts_match_their_recorded_output() {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    let rewrite = std::env::var_os("REWRITE_TESTDATA").is_some();
    let mut paths: Vec<_> = fs::read_dir(&directory).unwrap().map(|e| e.unwrap().path()).collect();
    paths.sort();
    assert!(!paths.is_empty(), "no scripts in {}", directory.display());
    let captured: CapturedLines = Arc::new(Mutex::new(Vec::new()));
    let capture = Capture { lines: Arc::clone(&captured) };
    let _default = tracing::subscriber::set_default(capture);
    for path in paths {
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.starts_with('#'), "{} must open with what it proves", path.display());
        let actual = run_script(&text, Arc::clone(&captured));
        if rewrite {
            fs::write(&path, &actual).unwrap();
        } else {
            assert!(
                actual == text,
                "{} differs from its recorded output; run with REWRITE_TESTDATA=1 and review \
                 the diff.\n--- actual ---\n{actual}",
                path.display()
            );
        }
    }
}
