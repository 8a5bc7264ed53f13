//! Tokio runtimes for jobs. A runtime is built per call and dropped when the call returns,
//! so no runtime outlives a command (a process that may later `fork()` never holds one).

use crate::error::{Error, Result};

/// A fresh multi-threaded runtime with two workers (the jobs are I/O bound).
pub fn build() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("community-stats")
        .enable_all()
        .build()
        .map_err(|e| Error::io("cannot start the async runtime", e))
}
