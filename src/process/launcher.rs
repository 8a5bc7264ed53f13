//! Starting a job in the background: a fresh process (the supervisor) in a new session
//! (`setsid`), never a `fork()` of the caller, which may own a tokio runtime or threads.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde::Serialize;

use std::os::fd::{AsFd, AsRawFd};

use nix::fcntl::{fcntl, FcntlArg, FdFlag};

use super::control;
use super::files::{self, ProcessFiles};
use super::liveness;
use super::state::{self, now, JobStatus, State};
use super::supervisor::JobSpec;
use crate::error::{Error, Result};

/// What a successful start reports.
#[derive(Debug, Serialize)]
pub struct StartOutcome {
    /// Process name.
    pub name: String,
    /// The worker's PID.
    pub pid: u32,
    /// The supervisor's PID.
    pub supervisor_pid: u32,
    /// `NAME.pid`.
    pub pid_file: String,
    /// `NAME.status`.
    pub status_file: String,
    /// `NAME.log`.
    pub log_file: String,
}

/// How long the launcher waits for the supervisor's answer.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);

/// Starts `spec` detached; returns once the worker runs (or fails with the reason, e.g.
/// "already running (PID n)").
pub fn start(spec: &JobSpec) -> Result<StartOutcome> {
    let files = ProcessFiles::new(&spec.pid_dir, &spec.name)?;
    files::prepare_dir(&files.dir, true)?;
    if spec.argv.is_empty() || spec.supervisor_argv.is_empty() {
        return Err(Error::invalid("empty command"));
    }
    if let Some(view) = control::observe(&files)? {
        if !view.state.is_final() {
            return Err(control::already_running(&files));
        }
    }
    // The lifetime lock is taken here and handed to the supervisor (an inherited
    // descriptor), and the new run's status is written before anything starts: from this
    // moment a `cancel` or `process-status` sees this run, not the previous one's end.
    let Some(lock) = liveness::lock_for_handover(&files)? else {
        return Err(control::already_running(&files));
    };
    state::replace_status(&files, &JobStatus::starting(&files, &spec.command))?;
    fcntl(lock.as_fd(), FcntlArg::F_SETFD(FdFlag::empty()))
        .map_err(|e| Error::Process(format!("cannot share the lock: {e}")))?;
    let payload = serde_json::to_vec(spec).expect("spec serialises");
    let mut command = Command::new(&spec.supervisor_argv[0]);
    command
        .args(&spec.supervisor_argv[1..])
        .env(liveness::ENV_LOCK_FD, lock.as_raw_fd().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: setsid is async-signal-safe; the closure allocates nothing.
    unsafe {
        command.pre_exec(|| {
            nix::unistd::setsid()
                .map(|_| ())
                .map_err(|e| std::io::Error::from_raw_os_error(e as i32))
        });
    }
    let spawned = command.spawn();
    drop(command);
    let mut child = match spawned {
        Ok(child) => {
            // The supervisor's inherited descriptor holds the lock now: closing ours does
            // not unlock it (the lock belongs to the open file description they share).
            drop(lock);
            child
        }
        Err(e) => {
            drop(lock); // the last descriptor: unlocks, nothing started
            let error = Error::io(
                format!("cannot start the supervisor {}", spec.supervisor_argv[0]),
                e,
            );
            let _ = state::update_status(&files, None, |s| {
                s.set_state(State::Failed);
                s.error = Some(error.to_string());
                s.end_time = Some(now());
            });
            return Err(error);
        }
    };
    let supervisor_pid = child.id();
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(&payload)
            .map_err(|e| Error::io("cannot hand the job to the supervisor", e))?;
    }
    let stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let answer = rx.recv_timeout(HANDSHAKE_TIMEOUT).unwrap_or_default();
    let answer = answer.trim();
    // Reap the supervisor whenever it ends, so a long-lived caller keeps no zombie.
    let reap = move || {
        let _ = child.wait();
    };
    if let Some(pid) = answer.strip_prefix("OK ") {
        std::thread::spawn(reap);
        let pid = pid
            .parse::<u32>()
            .map_err(|_| Error::Process(format!("bad answer from the supervisor: {answer}")))?;
        return Ok(StartOutcome {
            name: spec.name.clone(),
            pid,
            supervisor_pid,
            pid_file: files.pid.display().to_string(),
            status_file: files.status.display().to_string(),
            log_file: files.log.display().to_string(),
        });
    }
    if let Some(msg) = answer.strip_prefix("ERR ") {
        std::thread::spawn(reap);
        return Err(Error::Process(msg.to_string()));
    }
    let mut err_text = String::new();
    let _ = stderr.read_to_string(&mut err_text);
    std::thread::spawn(reap);
    let last = err_text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no answer")
        .trim()
        .to_string();
    Err(Error::Process(format!(
        "the supervisor did not start the job: {last}"
    )))
}
