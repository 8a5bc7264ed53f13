//! The job's status: a small serde struct in `NAME.status`, replaced atomically. Writers
//! (supervisor, worker progress, cancel) serialise through an open-file-description lock
//! on byte 0 of `NAME.lock`, independent of the job's lifetime `flock` on the same file.

use std::os::fd::AsFd;
use std::time::{SystemTime, UNIX_EPOCH};

use nix::fcntl::{fcntl, FcntlArg};
use nix::libc;
use serde::{Deserialize, Serialize};

use super::files::{self, ProcessFiles};
use crate::error::{Error, Result};

/// The detailed state of a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// The supervisor holds the lock; the worker is being started.
    Starting,
    /// The worker runs.
    Running,
    /// A cancel was requested; the worker is finishing its batch.
    Cancelling,
    /// Exit code 0.
    Completed,
    /// Non-zero exit code.
    Failed,
    /// Stopped on request after a checkpoint.
    Cancelled,
    /// Killed by a signal (SIGKILL, OOM killer, forced cancel).
    Killed,
    /// Gone without a final state (supervisor and worker died, e.g. a reboot).
    Lost,
}

impl State {
    /// True for the states a job never leaves.
    pub fn is_final(self) -> bool {
        !matches!(self, State::Starting | State::Running | State::Cancelling)
    }

    /// The seed's coarse `status` field: `running` while alive, else the final state.
    pub fn coarse(self) -> &'static str {
        match self {
            State::Starting | State::Running | State::Cancelling => "running",
            State::Completed => "completed",
            State::Failed => "failed",
            State::Cancelled => "cancelled",
            State::Killed => "killed",
            State::Lost => "lost",
        }
    }
}

/// The status document (the seed's fields first).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JobStatus {
    /// The worker's PID.
    pub pid: Option<u32>,
    /// When the job started (epoch seconds).
    pub start_time: f64,
    /// Coarse status: `running`, `completed`, `failed`, `cancelled`, `killed`, `lost`.
    pub status: String,
    /// The command, without credentials.
    pub command: String,
    /// Percent done (0-100), when the total is known.
    pub progress: f64,
    /// What the job is doing now.
    pub current_task: String,
    /// Last write (epoch seconds).
    pub last_update: f64,
    /// Detailed state.
    pub state: State,
    /// Process name.
    pub name: String,
    /// Items done.
    #[serde(default)]
    pub processed: u64,
    /// Items to do, when known.
    #[serde(default)]
    pub total: Option<u64>,
    /// Items per second (over the run).
    #[serde(default)]
    pub rate: Option<f64>,
    /// Estimated seconds left.
    #[serde(default)]
    pub eta_seconds: Option<f64>,
    /// Exit code (128 + signal when killed by a signal).
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// The signal that ended the worker, if any.
    #[serde(default)]
    pub signal: Option<i32>,
    /// When the job ended (epoch seconds).
    #[serde(default)]
    pub end_time: Option<f64>,
    /// The error that ended the job, if any.
    #[serde(default)]
    pub error: Option<String>,
    /// Something the operator should know about a run that did not fail (e.g. log lines
    /// that could not be written because the disk was full).
    #[serde(default)]
    pub warning: Option<String>,
    /// The supervisor's PID.
    #[serde(default)]
    pub supervisor_pid: Option<u32>,
    /// The worker's start time in clock ticks since boot (`/proc/<pid>/stat` field 22):
    /// what identity checks compare before any signal.
    #[serde(default)]
    pub pid_start_ticks: Option<u64>,
    /// When a cancel was requested (epoch seconds).
    #[serde(default)]
    pub cancel_requested: Option<f64>,
    /// How the cancel ended: `graceful` or `forced`.
    #[serde(default)]
    pub cancel_outcome: Option<String>,
    /// The log file.
    #[serde(default)]
    pub log_file: String,
    /// Schema version of this document.
    #[serde(default = "schema_version")]
    pub schema: u32,
}

fn schema_version() -> u32 {
    1
}

/// Now, in epoch seconds.
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl JobStatus {
    /// A fresh status for a job that is starting.
    pub fn starting(files: &ProcessFiles, command: &str) -> Self {
        let t = now();
        JobStatus {
            pid: None,
            start_time: t,
            status: State::Starting.coarse().into(),
            command: command.into(),
            progress: 0.0,
            current_task: "Starting...".into(),
            last_update: t,
            state: State::Starting,
            name: files.name.clone(),
            processed: 0,
            total: None,
            rate: None,
            eta_seconds: None,
            exit_code: None,
            signal: None,
            end_time: None,
            error: None,
            warning: None,
            supervisor_pid: Some(std::process::id()),
            pid_start_ticks: None,
            cancel_requested: None,
            cancel_outcome: None,
            log_file: files.log.display().to_string(),
            schema: 1,
        }
    }

    /// Sets the state and the coarse status together.
    pub fn set_state(&mut self, state: State) {
        self.state = state;
        self.status = state.coarse().into();
    }
}

/// Reads the status file: `None` if there is none; an error if it is empty or corrupt.
pub fn read_status(files: &ProcessFiles) -> Result<Option<JobStatus>> {
    let Some(text) = files::read_small(&files.status, 1 << 20)? else {
        return Ok(None);
    };
    if text.trim().is_empty() {
        return Err(Error::Process(format!(
            "status file {} is empty",
            files.status.display()
        )));
    }
    serde_json::from_str(&text).map(Some).map_err(|e| {
        Error::Process(format!(
            "status file {} is corrupt (not a status this package wrote: {} at line {}); remove it",
            files.status.display(),
            match e.classify() {
                serde_json::error::Category::Syntax | serde_json::error::Category::Eof =>
                    "not JSON",
                _ => "unexpected content",
            },
            e.line()
        ))
    })
}

/// Reads the PID file: `None` if there is none; an error if it holds anything but a PID.
pub fn read_pid_file(files: &ProcessFiles) -> Result<Option<u32>> {
    let Some(text) = files::read_small(&files.pid, 64)? else {
        return Ok(None);
    };
    match text.trim().parse::<u32>() {
        Ok(pid) if pid > 1 => Ok(Some(pid)),
        _ => Err(Error::Process(format!(
            "PID file {} does not hold a PID",
            files.pid.display()
        ))),
    }
}

/// Holds the status-write lock until dropped.
struct WriteLock {
    _file: std::fs::File,
}

fn lock_for_write(files: &ProcessFiles) -> Result<WriteLock> {
    let file = files::open_or_create(&files.lock, 0o600, false)?;
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = 0;
    fl.l_len = 1;
    fcntl(file.as_fd(), FcntlArg::F_OFD_SETLKW(&fl))
        .map_err(|e| Error::Process(format!("cannot lock {}: {e}", files.lock.display())))?;
    Ok(WriteLock { _file: file })
}

/// Read-modify-write of the status under the write lock. `create` supplies the document
/// when there is none (or returns `None` to skip the write).
pub fn update_status<F>(
    files: &ProcessFiles,
    create: Option<JobStatus>,
    change: F,
) -> Result<Option<JobStatus>>
where
    F: FnOnce(&mut JobStatus),
{
    let _guard = lock_for_write(files)?;
    // A corrupt document is replaced by a writer that has the facts.
    let current = read_status(files).unwrap_or_default();
    let Some(mut status) = current.or(create) else {
        return Ok(None);
    };
    change(&mut status);
    status.last_update = now();
    write_status(files, &status)?;
    Ok(Some(status))
}

/// The status file's size is a multiple of this: on a full disk the next status still
/// fits in the blocks the file already has (see [`files::write_atomic_or_in_place`]).
const STATUS_BLOCK: usize = 4096;

/// Replaces the status document (callers hold the write lock or own the job). The JSON is
/// padded with spaces to a whole number of [`STATUS_BLOCK`]s, so that a job on a full disk
/// can still record its progress and how it ended.
pub fn write_status(files: &ProcessFiles, status: &JobStatus) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(status).expect("status serialises");
    let padded = (bytes.len() + 1).div_ceil(STATUS_BLOCK) * STATUS_BLOCK;
    bytes.resize(padded - 1, b' ');
    bytes.push(b'\n');
    files::write_atomic_or_in_place(&files.status, &bytes)
}

/// Replaces the PID file.
pub fn write_pid_file(files: &ProcessFiles, pid: u32) -> Result<()> {
    files::write_atomic(&files.pid, pid.to_string().as_bytes())
}

/// Writes a status document as a whole under the write lock (used when a job starts).
pub fn replace_status(files: &ProcessFiles, status: &JobStatus) -> Result<()> {
    let _guard = lock_for_write(files)?;
    write_status(files, status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trips_and_rejects_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let files = ProcessFiles::new(dir.path(), "event-migration").unwrap();
        assert!(read_status(&files).unwrap().is_none());
        let s = JobStatus::starting(&files, "migrate-events");
        replace_status(&files, &s).unwrap();
        let updated = update_status(&files, None, |s| {
            s.set_state(State::Running);
            s.processed = 5;
        })
        .unwrap()
        .unwrap();
        assert_eq!(updated.status, "running");
        let back = read_status(&files).unwrap().unwrap();
        assert_eq!(back.processed, 5);
        assert_eq!(back.state, State::Running);

        std::fs::write(&files.status, "").unwrap();
        assert!(read_status(&files)
            .unwrap_err()
            .to_string()
            .contains("empty"));
        std::fs::write(&files.status, "{not json").unwrap();
        assert!(read_status(&files)
            .unwrap_err()
            .to_string()
            .contains("corrupt"));
        std::fs::write(&files.pid, "garbage").unwrap();
        assert!(read_pid_file(&files).is_err());
        std::fs::write(&files.pid, "1234\n").unwrap();
        assert_eq!(read_pid_file(&files).unwrap(), Some(1234));
    }
}
