//! What every job's options can do before the job runs: check themselves, without the
//! cluster. A foreground run checks them first (bad input is refused before anything is
//! read or written); a background twin checks them before it starts the job.

use crate::error::Result;

/// Options that can be checked without the cluster.
pub trait Validate {
    /// `Err(Error::InvalidInput)` naming the option and the accepted values, if any is wrong.
    fn validate(&self) -> Result<()>;
}
