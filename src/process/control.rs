//! The read-and-control side used by `process-status`, `list-processes`,
//! `cancel-process` and `processes clean`. It never trusts a bare PID: the job's lock and
//! the recorded start time decide; a process that is not ours is never signalled.

use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::{self, Signal};
use serde::Serialize;
use serde_json::{json, Value};

use super::files::{self, ProcessFiles, FILE_PREFIX};
use super::liveness;
use super::logfile;
use super::state::{self, now, JobStatus, State};
use crate::error::{Error, Result};

/// The effective status: the status file, corrected by liveness (a non-final state whose
/// lock is free becomes `lost`). `None` when the job has no files at all.
pub fn observe(files: &ProcessFiles) -> Result<Option<JobStatus>> {
    observe_with(files, true)
}

/// [`observe`], optionally without validating the PID file (listing many jobs).
fn observe_with(files: &ProcessFiles, check_pid_file: bool) -> Result<Option<JobStatus>> {
    let pid_from_file = if check_pid_file {
        state::read_pid_file(files)?
    } else {
        None
    };
    let Some(mut status) = state::read_status(files)? else {
        if let Some(pid) = pid_from_file {
            return Err(Error::Process(format!(
                "{} has a PID file (PID {pid}) but no status file: not a job this package started; ignoring it",
                files.name
            )));
        }
        return Ok(None);
    };
    if !status.state.is_final() && !liveness::lock_held(files)? {
        // The supervisor writes the final state before it releases the lock: read again.
        if let Some(again) = state::read_status(files)? {
            status = again;
        }
        if !status.state.is_final() {
            status.set_state(State::Lost);
            status.error = Some("the job ended without recording a final state (its supervisor and worker are gone)".into());
        }
    }
    Ok(Some(status))
}

/// The PID of the job that holds `files`' lock, waiting up to `wait` for a job that is
/// still starting to record it (so that "already running" can name it).
pub fn running_pid(files: &ProcessFiles, wait: Duration) -> Option<u32> {
    let deadline = Instant::now() + wait;
    loop {
        if let Ok(Some(s)) = state::read_status(files) {
            if let Some(pid) = s.pid.filter(|_| !s.state.is_final()) {
                return Some(pid);
            }
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The "already running" error, naming the PID when it can be known.
pub fn already_running(files: &ProcessFiles) -> Error {
    match running_pid(files, Duration::from_secs(3)) {
        Some(pid) => Error::Process(format!("{} is already running (PID {pid})", files.name)),
        None => Error::Process(format!("{} is already running", files.name)),
    }
}

fn no_such_job(files: &ProcessFiles) -> Error {
    Error::Process(format!(
        "no job named {} in {}",
        files.name,
        files.dir.display()
    ))
}

/// A status view for display: the status plus derived fields.
pub fn view(files: &ProcessFiles, log_lines: Option<usize>) -> Result<Value> {
    let status = observe(files)?.ok_or_else(|| no_such_job(files))?;
    to_view(files, &status, log_lines)
}

fn to_view(files: &ProcessFiles, status: &JobStatus, log_lines: Option<usize>) -> Result<Value> {
    let end = status.end_time.unwrap_or_else(now);
    let mut v = serde_json::to_value(status).expect("serialises");
    v["alive"] = json!(!status.state.is_final());
    v["runtime_seconds"] = json!((end - status.start_time).max(0.0));
    v["pid_file"] = json!(files.pid.display().to_string());
    v["status_file"] = json!(files.status.display().to_string());
    v["log_file"] = json!(files.log.display().to_string());
    if let Some(n) = log_lines {
        v["log_tail"] = json!(logfile::tail(&files.log, n)?);
    }
    Ok(v)
}

/// Every job in `dir` (running ones only unless `all`).
pub fn list(dir: &Path, all: bool) -> Result<Vec<Value>> {
    if std::fs::symlink_metadata(dir).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound) {
        // No directory yet: no job was ever started there.
        return Ok(Vec::new());
    }
    files::prepare_dir(dir, false)?;
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir)
        .map_err(|e| Error::io(format!("cannot list {}", dir.display()), e))?;
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter_map(|n| {
            n.strip_prefix(FILE_PREFIX)
                .and_then(|r| r.strip_suffix(".status"))
                .map(str::to_string)
        })
        .filter(|n| files::validate_name(n).is_ok())
        .collect();
    names.sort();
    for name in names {
        let files = ProcessFiles::new(dir, &name)?;
        match observe_with(&files, false) {
            Ok(Some(status)) => {
                if all || !status.state.is_final() {
                    out.push(to_view(&files, &status, None)?);
                }
            }
            Ok(None) => {}
            Err(e) => {
                if all {
                    out.push(json!({"name": name, "state": "unreadable", "status": "unreadable", "error": e.to_string()}));
                }
            }
        }
    }
    Ok(out)
}

/// What `cancel` did.
#[derive(Debug, Serialize)]
pub struct CancelOutcome {
    /// Process name.
    pub name: String,
    /// The worker's PID.
    pub pid: u32,
    /// `graceful` (stopped after SIGTERM) or `forced` (SIGKILL after the timeout).
    pub outcome: String,
    /// The job's final state.
    pub state: String,
    /// Seconds from SIGTERM to the end.
    pub seconds: f64,
}

fn wait_until_ended(files: &ProcessFiles, deadline: Instant) -> Result<Option<JobStatus>> {
    loop {
        if let Some(s) = observe(files)? {
            if s.state.is_final() {
                return Ok(Some(s));
            }
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// SIGTERM, wait up to `timeout`, then SIGKILL; only to a worker whose lock is held and
/// whose start time matches the one recorded.
pub fn cancel(files: &ProcessFiles, timeout: Duration) -> Result<CancelOutcome> {
    let deadline_start = Instant::now() + Duration::from_secs(10);
    let status = loop {
        let status = observe(files)?.ok_or_else(|| no_such_job(files))?;
        if status.state.is_final() {
            return Err(Error::Process(format!(
                "{} is not running (state: {})",
                files.name, status.status
            )));
        }
        if status.pid.is_some() || Instant::now() >= deadline_start {
            break status;
        }
        std::thread::sleep(Duration::from_millis(50)); // still starting
    };
    let pid = status
        .pid
        .ok_or_else(|| Error::Process(format!("{} has no worker PID yet", files.name)))?;
    if !liveness::is_same_process(pid, status.pid_start_ticks) {
        return Err(Error::Process(format!(
            "PID {pid} is no longer {}'s worker (the process is gone or the PID was reused); not signalling it",
            files.name
        )));
    }
    state::update_status(files, None, |s| {
        if !s.state.is_final() {
            s.cancel_requested.get_or_insert(now());
            s.set_state(State::Cancelling);
        }
    })?;
    let started = Instant::now();
    let nix_pid = nix::unistd::Pid::from_raw(pid as i32);
    signal::kill(nix_pid, Signal::SIGTERM)
        .map_err(|e| Error::Process(format!("cannot signal PID {pid}: {e}")))?;
    let mut outcome = "graceful";
    let mut ended = wait_until_ended(files, started + timeout)?;
    if ended.is_none() {
        outcome = "forced";
        if liveness::is_same_process(pid, status.pid_start_ticks) {
            let _ = signal::kill(nix_pid, Signal::SIGKILL);
        }
        ended = wait_until_ended(files, Instant::now() + Duration::from_secs(15))?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let ended = match ended {
        Some(s) => s,
        None => {
            // Worker gone but no supervisor to record it: record it ourselves.
            if liveness::lock_held(files)? {
                return Err(Error::Process(format!(
                    "{} (PID {pid}) did not stop",
                    files.name
                )));
            }
            state::update_status(files, None, |s| {
                if !s.state.is_final() {
                    s.set_state(if outcome == "forced" {
                        State::Killed
                    } else {
                        State::Cancelled
                    });
                    s.end_time = Some(now());
                }
            })?
            .ok_or_else(|| Error::Process("status vanished".into()))?
        }
    };
    state::update_status(files, None, |s| {
        s.cancel_outcome = Some(outcome.to_string())
    })?;
    Ok(CancelOutcome {
        name: files.name.clone(),
        pid,
        outcome: outcome.into(),
        state: ended.status,
        seconds,
    })
}

/// Removes the files of finished jobs (all, or only `name`); never a running job's, never
/// the lock file. Returns the names cleaned.
pub fn clean(dir: &Path, name: Option<&str>) -> Result<Vec<String>> {
    let jobs: Vec<String> = match name {
        Some(n) => vec![n.to_string()],
        None => list(dir, true)?
            .iter()
            .filter_map(|v| v["name"].as_str().map(str::to_string))
            .collect(),
    };
    let mut cleaned = Vec::new();
    for job in jobs {
        let files = ProcessFiles::new(dir, &job)?;
        let status = match observe(&files) {
            Ok(s) => s,
            Err(_) if liveness::lock_held(&files)? => continue,
            Err(_) => None, // unreadable files of a job that is not running
        };
        if let Some(s) = &status {
            if !s.state.is_final() {
                if name.is_some() {
                    return Err(Error::Process(format!("{job} is running; cancel it first")));
                }
                continue;
            }
        }
        if liveness::lock_held(&files)? {
            continue;
        }
        let mut removed = false;
        for path in [files.status.clone(), files.pid.clone(), files.log.clone()] {
            removed |= files::remove_if_present(&path)?;
        }
        for n in 1..=20 {
            removed |= files::remove_if_present(&files.rotated_log(n))?;
        }
        if removed {
            cleaned.push(job);
        }
    }
    Ok(cleaned)
}
