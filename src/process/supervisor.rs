//! The supervisor: a small process per job (started in a new session by the launcher)
//! that takes the job's lock, starts the worker, copies its output into the rotating
//! log, waits for it, and records the final state and exit code — also after SIGKILL or
//! an OOM kill of the worker, which only a waiting parent can see.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, Signal};
use serde::{Deserialize, Serialize};

use super::files::{self, ProcessFiles};
use super::liveness;
use super::logfile::RotatingLog;
use super::state::{self, now, JobStatus, State};
use crate::error::{Error, Result};

/// What to run, sent by the launcher to the supervisor on its standard input (so that
/// secrets in `env` never appear on a command line).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// Process name.
    pub name: String,
    /// PID directory.
    pub pid_dir: PathBuf,
    /// The worker's argv (argv[0] is the program).
    pub argv: Vec<String>,
    /// The command as shown in the status (no credentials).
    pub command: String,
    /// Extra environment for the worker (may hold credentials).
    pub env: BTreeMap<String, String>,
    /// Log size cap in bytes before rotation.
    pub log_max_bytes: u64,
    /// Rotated logs kept.
    pub log_backups: u32,
    /// The supervisor's own argv (the launcher runs this).
    pub supervisor_argv: Vec<String>,
}

/// Exit code of a worker that stopped on request after its checkpoint.
pub const CANCELLED_EXIT_CODE: i32 = 130;

/// Environment variables through which the worker finds its status file.
pub const ENV_JOB_NAME: &str = "COMMUNITY_STATS_JOB_NAME";
/// See [`ENV_JOB_NAME`].
pub const ENV_JOB_PID_DIR: &str = "COMMUNITY_STATS_JOB_PID_DIR";

static TERM_RECEIVED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_term(_: nix::libc::c_int) {
    TERM_RECEIVED.store(true, Ordering::SeqCst);
}

fn install_signal_handlers() -> Result<()> {
    let action = SigAction::new(
        SigHandler::Handler(on_term),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        // SAFETY: the handler only stores to an atomic (async-signal-safe).
        unsafe { signal::sigaction(sig, &action) }
            .map_err(|e| Error::Process(format!("cannot install a signal handler: {e}")))?;
    }
    // SAFETY: ignoring SIGPIPE has no handler code.
    unsafe { signal::signal(Signal::SIGPIPE, SigHandler::SigIgn) }
        .map_err(|e| Error::Process(e.to_string()))?;
    Ok(())
}

fn handshake(out: &mut dyn Write, line: &str) {
    let _ = out.write_all(line.as_bytes());
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}

/// Detaches the supervisor's standard streams (the launcher's pipes) once it has answered.
fn detach_stdio() {
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        let _ = nix::unistd::dup2_stdin(null.as_fd());
        let _ = nix::unistd::dup2_stdout(null.as_fd());
        let _ = nix::unistd::dup2_stderr(null.as_fd());
    }
}

/// Runs the job to its end. `out` receives one handshake line: `OK <worker pid>` or
/// `ERR <message>`. Returns the worker's exit code (128 + signal when killed).
pub fn supervise(spec: &JobSpec, out: &mut dyn Write) -> Result<i32> {
    let started = (|| -> Result<_> {
        if spec.argv.is_empty() {
            return Err(Error::invalid("empty worker command"));
        }
        let files = ProcessFiles::new(&spec.pid_dir, &spec.name)?;
        files::prepare_dir(&files.dir, true)?;
        // The launcher took the lock and handed it over; a supervisor started otherwise
        // takes it itself.
        let lock = match liveness::inherited_lifetime_lock(&files)? {
            Some(lock) => lock,
            None => liveness::acquire_lifetime_lock(&files)?
                .ok_or_else(|| super::control::already_running(&files))?,
        };
        Ok((files, lock))
    })();
    let (files, lock) = match started {
        Ok(v) => v,
        Err(e) => {
            handshake(out, &format!("ERR {e}"));
            return Err(e);
        }
    };
    match run_locked(spec, &files, &lock, out) {
        Ok(code) => Ok(code),
        Err(e) => {
            handshake(out, &format!("ERR {e}"));
            let _ = state::update_status(&files, None, |s| {
                if !s.state.is_final() {
                    s.set_state(State::Failed);
                    s.error = Some(e.to_string());
                    s.end_time = Some(now());
                }
            });
            Err(e)
        }
    }
}

fn run_locked(
    spec: &JobSpec,
    files: &ProcessFiles,
    lock: &nix::fcntl::Flock<std::fs::File>,
    out: &mut dyn Write,
) -> Result<i32> {
    install_signal_handlers()?;
    let log = Arc::new(Mutex::new(RotatingLog::open(
        files,
        spec.log_max_bytes,
        spec.log_backups,
    )?));
    let mut status = JobStatus::starting(files, &spec.command);
    state::replace_status(files, &status)?;
    let _ = files::remove_if_present(&files.pid);
    write_log(
        &log,
        &format!(
            "supervisor: starting {} at {}: {}\n",
            spec.name,
            fmt_time(status.start_time),
            spec.command
        ),
    );

    // The worker inherits the lock (its fd without close-on-exec), so the lock stays held
    // while either of them lives.
    fcntl(lock.as_fd(), FcntlArg::F_SETFD(FdFlag::empty()))
        .map_err(|e| Error::Process(format!("cannot share the lock: {e}")))?;
    let (read_end, write_end) = nix::unistd::pipe2(OFlag::O_CLOEXEC)
        .map_err(|e| Error::Process(format!("cannot create a pipe: {e}")))?;
    let write_err: OwnedFd = write_end
        .try_clone()
        .map_err(|e| Error::io("cannot duplicate a pipe", e))?;
    let mut command = Command::new(&spec.argv[0]);
    command
        .args(&spec.argv[1..])
        .envs(&spec.env)
        .env(ENV_JOB_NAME, &spec.name)
        .env(ENV_JOB_PID_DIR, &spec.pid_dir)
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::from(write_end))
        .stderr(Stdio::from(write_err));
    let mut child = command
        .spawn()
        .map_err(|e| Error::io(format!("cannot start {}", spec.argv[0]), e))?;
    drop(command); // closes our copies of the pipe's write end
    let worker_pid = child.id();
    let _ = fcntl(lock.as_fd(), FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC));

    status.pid = Some(worker_pid);
    status.pid_start_ticks = liveness::process_start_ticks(worker_pid);
    status.set_state(State::Running);
    status.current_task = "Started".into();
    // The worker may already have reported progress: merge rather than overwrite.
    let pid_start_ticks = status.pid_start_ticks;
    state::update_status(files, Some(status.clone()), |s| {
        s.pid = Some(worker_pid);
        s.pid_start_ticks = pid_start_ticks;
        if s.state == State::Starting {
            s.set_state(State::Running);
        }
    })?;
    state::write_pid_file(files, worker_pid)?;
    handshake(out, &format!("OK {worker_pid}"));
    detach_stdio();

    // Copy the worker's output into the log (the worker records its own error in the
    // status: see [`record_worker_error`]).
    let copier = {
        let log = Arc::clone(&log);
        std::thread::spawn(move || {
            let mut reader = BufReader::new(std::fs::File::from(read_end));
            let mut line = Vec::new();
            loop {
                line.clear();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if let Ok(mut l) = log.lock() {
                            let _ = l.write(&line);
                        }
                    }
                }
            }
        })
    };

    let mut relayed = false;
    let exit = loop {
        match child.try_wait() {
            Ok(Some(exit)) => break exit,
            Ok(None) => {}
            Err(e) => return Err(Error::io("cannot wait for the worker", e)),
        }
        if TERM_RECEIVED.swap(false, Ordering::SeqCst) && !relayed {
            relayed = true;
            write_log(&log, "supervisor: termination requested; asking the worker to stop after its checkpoint\n");
            let _ = signal::kill(
                nix::unistd::Pid::from_raw(worker_pid as i32),
                Signal::SIGTERM,
            );
            let _ = state::update_status(files, None, |s| {
                if !s.state.is_final() {
                    s.cancel_requested.get_or_insert(now());
                    s.set_state(State::Cancelling);
                }
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // The output ends when the worker (and anything that inherited its pipe) is gone; a
    // loaded machine may need a while to drain it (at most 10 s: a grandchild may hold it).
    for _ in 0..200 {
        if copier.is_finished() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }

    let final_status = state::update_status(files, Some(status), |s| {
        let cancel_requested = s.cancel_requested.is_some() || relayed;
        let (state, code, sig) = match (exit.code(), exit.signal()) {
            (Some(0), _) => (State::Completed, 0, None),
            (Some(CANCELLED_EXIT_CODE), _) => (State::Cancelled, CANCELLED_EXIT_CODE, None),
            (Some(code), _) => (State::Failed, code, None),
            (None, Some(sig)) => {
                let state = if (sig == Signal::SIGTERM as i32 && cancel_requested)
                    || sig == Signal::SIGINT as i32
                {
                    State::Cancelled
                } else {
                    State::Killed
                };
                (state, 128 + sig, Some(sig))
            }
            (None, None) => (State::Failed, -1, None),
        };
        s.set_state(state);
        s.exit_code = Some(code);
        s.signal = sig;
        s.end_time = Some(now());
        s.eta_seconds = None;
        s.error = match state {
            State::Failed => Some(
                s.error
                    .take()
                    .unwrap_or_else(|| format!("exit code {code}")),
            ),
            State::Killed => Some(format!("killed by signal {}", sig.unwrap_or(0))),
            _ => None,
        };
        if state == State::Completed && s.total.is_some() {
            s.progress = 100.0;
        }
        if let Some(lost) = log.lock().ok().and_then(|l| l.lost_lines()) {
            s.warning = Some(lost);
        }
        // Logged before the final status is written: whoever sees the job ended finds
        // this line in its log.
        write_log(
            &log,
            &format!(
                "supervisor: {} ended at {}: {} (exit code {})\n",
                spec.name,
                fmt_time(s.end_time.unwrap_or_else(now)),
                s.state.coarse(),
                code
            ),
        );
    })?
    .expect("status exists");
    Ok(final_status.exit_code.unwrap_or(-1))
}

fn write_log(log: &Arc<Mutex<RotatingLog>>, line: &str) {
    if let Ok(mut l) = log.lock() {
        let _ = l.write(line.as_bytes());
    }
}

fn fmt_time(epoch: f64) -> String {
    chrono::DateTime::from_timestamp(epoch as i64, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

/// Records `message` as the error of the job this process runs as a managed worker (the
/// supervisor keeps it as the failed job's error); does nothing in any other process.
pub fn record_worker_error(message: &str) -> Result<()> {
    let Some(files) = worker_files_from_env() else {
        return Ok(());
    };
    state::update_status(&files, None, |s| s.error = Some(message.to_string()))?;
    Ok(())
}

/// Records the end of the job this process runs as a managed worker, from the worker
/// itself: its final state (by its exit code: 0 completed, 130 cancelled, else failed),
/// exit code and end time, unless a final state is recorded already. The supervisor
/// records the same when it sees the worker end (and the signal when it was killed); this
/// way a job that ran to its end is recorded so even when its supervisor was killed.
/// Does nothing in any other process.
pub fn record_worker_end(exit_code: i32) -> Result<()> {
    let Some(files) = worker_files_from_env() else {
        return Ok(());
    };
    state::update_status(&files, None, |s| {
        if s.state.is_final() {
            return;
        }
        let state = match exit_code {
            0 => State::Completed,
            CANCELLED_EXIT_CODE => State::Cancelled,
            _ => State::Failed,
        };
        s.set_state(state);
        s.exit_code = Some(exit_code);
        s.end_time = Some(now());
        s.eta_seconds = None;
        if state == State::Failed && s.error.is_none() {
            s.error = Some(format!("exit code {exit_code}"));
        }
        if state == State::Completed && s.total.is_some() {
            s.progress = 100.0;
        }
    })?;
    Ok(())
}

/// The worker's files, if this process runs as a managed worker.
pub fn worker_files_from_env() -> Option<ProcessFiles> {
    let name = std::env::var(ENV_JOB_NAME).ok()?;
    let dir = std::env::var(ENV_JOB_PID_DIR).ok()?;
    ProcessFiles::new(std::path::Path::new(&dir), &name).ok()
}
