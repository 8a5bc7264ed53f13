//! The core's error type. Each variant maps to one Python exception class of
//! `invenio_community_stats.errors` (see `bindings.rs`).

use std::io;

/// Everything that can go wrong in the core.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A value given by the operator is malformed or out of range (exit code 2 on the CLI).
    #[error("{0}")]
    InvalidInput(String),
    /// The connection settings or configuration cannot be used.
    #[error("{0}")]
    Config(String),
    /// The cluster could not be reached (after retries, when retries were allowed).
    #[error("cannot reach OpenSearch at {host}: {reason}")]
    Connection { host: String, reason: String },
    /// The cluster refused our credentials.
    #[error("OpenSearch at {host} rejected the credentials (HTTP {status})")]
    Auth { host: String, status: u16 },
    /// The cluster answered a request with an error: `kind` is the type of its root cause
    /// (`resource_already_exists_exception`, ...; empty when the reply was not an
    /// OpenSearch error), `reason` one line ending with that root cause.
    #[error("OpenSearch error on {what} (HTTP {status}): {reason}")]
    Search {
        status: u16,
        what: String,
        kind: String,
        reason: String,
    },
    /// A precondition on the data does not hold (missing index, existing data, ...).
    #[error("{0}")]
    Data(String),
    /// Background process management failed (files, locks, signals).
    #[error("{0}")]
    Process(String),
    /// Another run holds what this one needs (the aggregation lock, a running aggregation).
    #[error("{0}")]
    Conflict(String),
    /// A shard or node is not available now (a node left the cluster, a shard is being
    /// recovered): transient, retried within the job's retry budget.
    #[error("{0}")]
    Unavailable(String),
    /// A fault of this program (a task that panicked): a bug to report.
    #[error("internal error: {0}")]
    Internal(String),
    /// The job stopped early because it was asked to (SIGTERM, Ctrl-C), after a checkpoint.
    #[error("cancelled: {0}")]
    Cancelled(String),
    /// A file-system error, with what we were doing.
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
}

/// Result alias used across the core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps an I/O error with a short description of the operation.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// Shorthand for [`Error::InvalidInput`].
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidInput(msg.into())
    }
}
