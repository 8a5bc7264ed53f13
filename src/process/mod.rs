//! The background process manager: start a job detached (`launcher`), supervise it
//! (`supervisor`), read and control it (`control`). The state lives in small files in a
//! PID directory (`files`, `state`, `logfile`); liveness never trusts a bare PID
//! (`liveness`).

pub mod control;
pub mod files;
pub mod launcher;
pub mod liveness;
pub mod logfile;
pub mod state;
pub mod supervisor;

pub use files::{validate_name, ProcessFiles};
pub use state::{JobStatus, State};
