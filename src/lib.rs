//! Rust core of invenio-community-stats: search access, the batch jobs, and the
//! background process manager. `bindings` is the only module that knows about Python.

/// mimalloc for the core's own allocations: the batch loops parse and drop millions of
/// small JSON values. Measured on the usage delta of bench/aggregate_scale.py (1M events,
/// 101 communities): glibc's malloc and free took about 30 % of the client's samples, and
/// the peak RSS fell from 418 to 307 MiB with mimalloc. The other way round for the lighter
/// jobs, which it keeps freed memory for: event generation peaked at 126 MiB against 88.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
