//! The harness's error type.

use std::path::PathBuf;

/// Why a benchmark run failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A command-line value could not be understood.
    #[error("invalid {what} {value:?}: {reason}")]
    Invalid {
        /// Which option or item.
        what: &'static str,
        /// The value given.
        value: String,
        /// What is wrong and what is expected.
        reason: String,
    },
    /// A file or directory could not be read or written.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What the harness was doing (`create`, `write`, ...).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A server process could not be started or controlled.
    #[error("cannot {action} {program}: {source}")]
    Process {
        /// What the harness was doing (`start`, `signal`, ...).
        action: &'static str,
        /// The program or node.
        program: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A helper command ran but failed.
    #[error("{program} failed ({status}); its output: {output}")]
    CommandFailed {
        /// The command line.
        program: String,
        /// Its exit status.
        status: String,
        /// What it printed (cut short).
        output: String,
    },
    /// A program the harness needs was not found.
    #[error("cannot find {program}: {hint}")]
    NotFound {
        /// The program.
        program: String,
        /// How to get it.
        hint: String,
    },
    /// The cluster did not become ready in time.
    #[error("the {system} cluster was not ready after {waited_s} s: {reason}")]
    NotReady {
        /// `kv`, `kv-etcd` or `etcd`.
        system: String,
        /// Seconds waited.
        waited_s: u64,
        /// What was missing (see the node logs in the report folder).
        reason: String,
    },
    /// The client of our store failed to start.
    #[error("kv client: {0}")]
    KvClient(#[from] kv_client::Error),
    /// The etcd client failed to start.
    #[error("etcd client: {0}")]
    Etcd(#[from] etcd_client::Error),
    /// A watcher of the watch workload could not be created.
    #[error("cannot create watcher {watcher}: {reason}")]
    Watch {
        /// The watcher (0-based).
        watcher: usize,
        /// The client's or server's complaint.
        reason: String,
    },
    /// A chart could not be drawn.
    #[error("cannot draw chart {chart}: {reason}")]
    Chart {
        /// The chart's file stem.
        chart: String,
        /// The drawing backend's complaint.
        reason: String,
    },
    /// A report file could not be encoded.
    #[error("cannot encode {what}: {reason}")]
    Encode {
        /// What was encoded.
        what: &'static str,
        /// Why it failed.
        reason: String,
    },
    /// The run was interrupted (Ctrl-C).
    #[error("interrupted")]
    Interrupted,
}

impl Error {
    /// An [`Error::Io`] for `path`.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Error::Io { action, path: path.into(), source }
    }

    /// An [`Error::Invalid`].
    pub(crate) fn invalid(what: &'static str, value: &str, reason: impl Into<String>) -> Self {
        Error::Invalid { what, value: value.to_owned(), reason: reason.into() }
    }
}
