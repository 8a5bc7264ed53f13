//! Rust core of invenio-community-stats: search access, the batch jobs, and the
//! background process manager. `bindings` is the only module that knows about Python.

pub mod aggregation;
pub mod bulk;
pub mod cancel;
pub mod communities;
pub mod dates;
pub mod enrich;
pub mod error;
pub mod events;
pub mod generation;
pub mod info;
pub mod invenio_packages;
pub mod lock;
pub mod migration;
pub mod options;
pub mod pit;
pub mod process;
pub mod progress;
pub mod rng;
pub mod runtime;
pub mod sample;
pub mod search;
pub mod settings;
pub mod templates;

mod bindings;
