//! Is a job alive? Never a bare PID: the job's lifetime `flock` on `NAME.lock` decides,
//! and before any signal the PID's start time must match the one recorded at launch.

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use super::files::{self, ProcessFiles};
use crate::error::Result;

/// True while some process (supervisor or worker) holds the job's lock.
pub fn lock_held(files: &ProcessFiles) -> Result<bool> {
    let Some(file) = files::open_existing(&files.lock)? else {
        return Ok(false);
    };
    match Flock::lock(file, FlockArg::LockSharedNonblock) {
        Ok(guard) => {
            drop(guard);
            Ok(false)
        }
        Err((_, Errno::EWOULDBLOCK)) => Ok(true),
        Err((_, e)) => Err(crate::error::Error::Process(format!(
            "cannot probe {}: {e}",
            files.lock.display()
        ))),
    }
}

/// The environment variable through which the launcher hands the job's lifetime lock
/// (the number of an inherited descriptor of `NAME.lock`, already locked) to the supervisor.
pub const ENV_LOCK_FD: &str = "COMMUNITY_STATS_JOB_LOCK_FD";

/// The lifetime lock the launcher handed over (see [`ENV_LOCK_FD`]), if this process got
/// one: the descriptor must be `files.lock` itself (same device and inode), and it is
/// locked already (its open file description holds the `flock`).
pub fn inherited_lifetime_lock(files: &ProcessFiles) -> Result<Option<Flock<std::fs::File>>> {
    use std::os::fd::FromRawFd;
    use std::os::unix::fs::MetadataExt;

    let Some(fd) = std::env::var(ENV_LOCK_FD)
        .ok()
        .and_then(|v| v.parse::<i32>().ok())
    else {
        return Ok(None);
    };
    std::env::remove_var(ENV_LOCK_FD);
    let expected = std::fs::symlink_metadata(&files.lock)
        .map_err(|e| crate::error::Error::io("cannot stat the lock file", e))?;
    let held =
        nix::sys::stat::fstat(unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }).map_err(|e| {
            crate::error::Error::Process(format!(
                "the inherited lock descriptor {fd} is not open: {e}"
            ))
        })?;
    if held.st_dev as u64 != expected.dev() || held.st_ino as u64 != expected.ino() {
        return Err(crate::error::Error::Process(format!(
            "descriptor {fd} is not {}",
            files.lock.display()
        )));
    }
    // SAFETY: the launcher opened this descriptor for us and nothing else in this process owns it.
    let file = unsafe { std::fs::File::from_raw_fd(fd) };
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(guard) => Ok(Some(guard)),
        Err((_, e)) => Err(crate::error::Error::Process(format!(
            "the inherited lock is not held: {e}"
        ))),
    }
}

/// Takes the job's lifetime lock to hand it to a supervisor (see [`ENV_LOCK_FD`]): the
/// file is locked with a plain `flock`, without a guard that would unlock it when dropped,
/// so that closing the launcher's descriptor after the spawn leaves the lock with the
/// supervisor's inherited one. `None` when another job holds it. (Dropping the file
/// before a supervisor inherited it releases the lock.)
pub fn lock_for_handover(files: &ProcessFiles) -> Result<Option<std::fs::File>> {
    use std::os::fd::AsRawFd;

    let file = files::open_or_create(&files.lock, 0o600, false)?;
    for _ in 0..20 {
        // SAFETY: flock on a descriptor we own.
        if unsafe { nix::libc::flock(file.as_raw_fd(), nix::libc::LOCK_EX | nix::libc::LOCK_NB) }
            == 0
        {
            return Ok(Some(file));
        }
        match Errno::last() {
            Errno::EWOULDBLOCK => std::thread::sleep(std::time::Duration::from_millis(25)),
            e => {
                return Err(crate::error::Error::Process(format!(
                    "cannot lock {}: {e}",
                    files.lock.display()
                )))
            }
        }
    }
    Ok(None)
}

/// Takes the job's lifetime lock, retrying briefly (a reader's probe holds it for
/// microseconds). `None` when another job holds it.
pub fn acquire_lifetime_lock(files: &ProcessFiles) -> Result<Option<Flock<std::fs::File>>> {
    let mut file = files::open_or_create(&files.lock, 0o600, false)?;
    for _ in 0..20 {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(guard) => return Ok(Some(guard)),
            Err((f, Errno::EWOULDBLOCK)) => {
                file = f;
                std::thread::sleep(std::time::Duration::from_millis(25));
            }
            Err((_, e)) => {
                return Err(crate::error::Error::Process(format!(
                    "cannot lock {}: {e}",
                    files.lock.display()
                )))
            }
        }
    }
    Ok(None)
}

/// The process's start time in clock ticks since boot (field 22 of `/proc/<pid>/stat`):
/// fine enough to tell a process from a later one that reused its PID, which the
/// one-second start time cannot. `None` if there is no such (non-zombie) process.
pub fn process_start_ticks(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); field 22 is index 19.
    if matches!(fields.first(), Some(&"Z") | Some(&"X")) {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// True if `pid` is alive and is the process that was recorded (same start ticks).
pub fn is_same_process(pid: u32, recorded_ticks: Option<u64>) -> bool {
    match (process_start_ticks(pid), recorded_ticks) {
        (Some(actual), Some(recorded)) => actual == recorded,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_is_seen_held_then_free() {
        let dir = tempfile::tempdir().unwrap();
        let files = ProcessFiles::new(dir.path(), "aggregation").unwrap();
        assert!(!lock_held(&files).unwrap());
        let guard = acquire_lifetime_lock(&files).unwrap().unwrap();
        assert!(lock_held(&files).unwrap());
        assert!(acquire_lifetime_lock(&files).unwrap().is_none());
        drop(guard);
        assert!(!lock_held(&files).unwrap());
    }

    #[test]
    fn own_process_identity() {
        let me = std::process::id();
        let ticks = process_start_ticks(me);
        assert!(ticks.is_some());
        assert!(is_same_process(me, ticks));
        assert!(!is_same_process(me, ticks.map(|s| s + 1)));
        assert!(!is_same_process(me, None));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(process_start_ticks(pid).is_none());
    }
}
