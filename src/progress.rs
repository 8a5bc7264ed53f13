//! The one small progress API the batch loops use: `set_total`, `advance`, `set_task`.
//! In a managed background worker it updates the job's status file (atomically, at most
//! about once a second); in the foreground at a terminal it redraws one live line on stderr
//! (bar, %, processed / total, rate, ETA, task); otherwise (piped, logged) it logs a line
//! every few seconds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::process::state::{self, State};
use crate::process::supervisor::worker_files_from_env;
use crate::process::ProcessFiles;

const UNKNOWN: u64 = u64::MAX;

/// Set to `terminal` by the command line when stderr is a terminal: progress is then one
/// live line redrawn in place instead of log lines.
pub const ENV_PROGRESS: &str = "COMMUNITY_STATS_PROGRESS";

/// Where progress goes.
#[derive(Clone)]
pub enum Sink {
    /// The managed job's status file.
    Status(ProcessFiles),
    /// One line redrawn in place on stderr (a terminal).
    Terminal,
    /// A log line (`log::info!`) now and then.
    Log,
}

/// A cloneable progress reporter.
#[derive(Clone)]
pub struct Progress {
    inner: Arc<Inner>,
}

struct Inner {
    label: String,
    processed: AtomicU64,
    total: AtomicU64,
    task: Mutex<String>,
    started: Instant,
    last_flush: Mutex<Option<Instant>>,
    interval: Duration,
    sink: Sink,
    writes: AtomicU64,
    /// The live line is on screen (a newline ends it when the reporter goes away).
    drawn: std::sync::atomic::AtomicBool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if self.drawn.load(Ordering::Relaxed) {
            use std::io::Write;
            let mut err = std::io::stderr().lock();
            let _ = err.write_all(b"\n");
            let _ = err.flush();
        }
    }
}

impl Progress {
    /// A reporter for the current process: the status file when running as a managed
    /// worker, the log otherwise.
    pub fn from_env(label: &str) -> Self {
        match worker_files_from_env() {
            Some(files) => Self::with_sink(label, Sink::Status(files), Duration::from_secs(1)),
            None if std::env::var(ENV_PROGRESS).as_deref() == Ok("terminal") => {
                Self::with_sink(label, Sink::Terminal, Duration::from_millis(200))
            }
            None => Self::with_sink(label, Sink::Log, Duration::from_secs(5)),
        }
    }

    /// A reporter writing to `sink` at most once per `interval`.
    pub fn with_sink(label: &str, sink: Sink, interval: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                label: label.to_string(),
                processed: AtomicU64::new(0),
                total: AtomicU64::new(UNKNOWN),
                task: Mutex::new(String::new()),
                started: Instant::now(),
                last_flush: Mutex::new(None),
                interval,
                sink,
                writes: AtomicU64::new(0),
                drawn: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    /// Sets the number of items to do.
    pub fn set_total(&self, total: u64) {
        self.inner.total.store(total, Ordering::Relaxed);
        self.maybe_flush();
    }

    /// Adds `n` done items.
    pub fn advance(&self, n: u64) {
        self.inner.processed.fetch_add(n, Ordering::Relaxed);
        self.maybe_flush();
    }

    /// Describes what the job is doing now.
    pub fn set_task(&self, task: impl Into<String>) {
        *self.inner.task.lock().expect("lock") = task.into();
        self.maybe_flush();
    }

    /// Items done so far.
    pub fn processed(&self) -> u64 {
        self.inner.processed.load(Ordering::Relaxed)
    }

    /// Status writes done so far (for the overhead benchmark).
    pub fn writes(&self) -> u64 {
        self.inner.writes.load(Ordering::Relaxed)
    }

    /// Writes now, regardless of the rate limit.
    pub fn flush(&self) {
        *self.inner.last_flush.lock().expect("lock") = Some(Instant::now());
        self.write();
    }

    fn maybe_flush(&self) {
        let Ok(mut last) = self.inner.last_flush.try_lock() else {
            return;
        };
        let due = last
            .map(|t| t.elapsed() >= self.inner.interval)
            .unwrap_or(true);
        if due {
            *last = Some(Instant::now());
            drop(last);
            self.write();
        }
    }

    fn write(&self) {
        let processed = self.inner.processed.load(Ordering::Relaxed);
        let total = match self.inner.total.load(Ordering::Relaxed) {
            UNKNOWN => None,
            t => Some(t),
        };
        let task = self.inner.task.lock().expect("lock").clone();
        let elapsed = self.inner.started.elapsed().as_secs_f64();
        let rate = if elapsed > 0.0 {
            Some(processed as f64 / elapsed)
        } else {
            None
        };
        let percent = match total {
            Some(t) if t > 0 => (processed as f64 * 100.0 / t as f64).min(100.0),
            Some(_) => 100.0,
            None => 0.0,
        };
        let eta = match (total, rate) {
            (Some(t), Some(r)) if r > 0.0 && t >= processed => Some((t - processed) as f64 / r),
            _ => None,
        };
        self.inner.writes.fetch_add(1, Ordering::Relaxed);
        match &self.inner.sink {
            Sink::Status(files) => {
                let result = state::update_status(files, None, |s| {
                    s.processed = processed;
                    s.total = total;
                    s.progress = (percent * 10.0).round() / 10.0;
                    s.rate = rate.map(|r| (r * 10.0).round() / 10.0);
                    s.eta_seconds = eta.map(|e| e.round());
                    if !task.is_empty() {
                        s.current_task = task.clone();
                    }
                    if s.state == State::Starting {
                        s.set_state(State::Running);
                    }
                });
                if let Err(e) = result {
                    log::warn!("cannot update the job status: {e}");
                }
            }
            Sink::Terminal => {
                use std::io::Write;
                let line = live_line(&self.inner.label, processed, total, rate, eta, &task);
                let width = terminal_width().saturating_sub(1).max(20);
                let shown: String = line.chars().take(width).collect();
                let mut err = std::io::stderr().lock();
                // Back to the line's start, clear it, draw.
                let _ = write!(err, "\r\x1b[2K{shown}");
                let _ = err.flush();
                self.inner.drawn.store(true, Ordering::Relaxed);
            }
            Sink::Log => {
                let total_text = total.map(|t| format!("/{t}")).unwrap_or_default();
                let pct = if total.is_some() {
                    format!(" ({percent:.1}%)")
                } else {
                    String::new()
                };
                log::info!(
                    "{}: {processed}{total_text}{pct}, {:.0}/s{}{}",
                    self.inner.label,
                    rate.unwrap_or(0.0),
                    eta.map(|e| format!(", ~{e:.0}s left")).unwrap_or_default(),
                    if task.is_empty() {
                        String::new()
                    } else {
                        format!(" — {task}")
                    }
                );
            }
        }
    }
}

/// The live line: `label [#####-----]  42.0%  420/1000  35/s  ETA 00:00:17  task`.
fn live_line(
    label: &str,
    processed: u64,
    total: Option<u64>,
    rate: Option<f64>,
    eta: Option<f64>,
    task: &str,
) -> String {
    let rate = format!("{:.0}/s", rate.unwrap_or(0.0));
    let task = if task.is_empty() {
        String::new()
    } else {
        format!("  {task}")
    };
    match total {
        Some(t) => {
            let fraction = if t == 0 {
                1.0
            } else {
                (processed as f64 / t as f64).min(1.0)
            };
            let filled = (fraction * 30.0).round() as usize;
            let eta = eta
                .map(|e| {
                    let e = e.round() as u64;
                    format!("{:02}:{:02}:{:02}", e / 3600, e / 60 % 60, e % 60)
                })
                .unwrap_or_else(|| "--:--:--".into());
            format!(
                "{label} [{}{}] {:5.1}%  {processed}/{t}  {rate}  ETA {eta}{task}",
                "#".repeat(filled),
                "-".repeat(30 - filled),
                fraction * 100.0
            )
        }
        None => format!("{label}  {processed}  {rate}{task}"),
    }
}

/// Columns of the terminal on stderr (`COLUMNS`, else 100 when it cannot be asked).
fn terminal_width() -> usize {
    let mut size: nix::libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ fills a winsize struct for a terminal file descriptor.
    let asked = unsafe { nix::libc::ioctl(2, nix::libc::TIOCGWINSZ, &mut size) };
    if asked == 0 && size.ws_col > 0 {
        return usize::from(size.ws_col);
    }
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(100)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::state::JobStatus;

    #[test]
    fn the_live_line_shows_bar_percent_counts_rate_eta_and_task() {
        let line = live_line(
            "migrate-events",
            420,
            Some(1000),
            Some(35.2),
            Some(17.0),
            "view 2024-01",
        );
        assert_eq!(
            line,
            "migrate-events [#############-----------------]  42.0%  420/1000  35/s  ETA 00:00:17  view 2024-01"
        );
        assert_eq!(live_line("x", 5, None, None, None, ""), "x  5  0/s");
    }

    #[test]
    fn writes_progress_into_the_status_at_most_once_per_interval() {
        let dir = tempfile::tempdir().unwrap();
        let files = ProcessFiles::new(dir.path(), "aggregation").unwrap();
        state::replace_status(&files, &JobStatus::starting(&files, "x")).unwrap();
        let p = Progress::with_sink(
            "test",
            Sink::Status(files.clone()),
            Duration::from_secs(3600),
        );
        p.set_total(200);
        for _ in 0..100 {
            p.advance(1);
        }
        assert_eq!(p.writes(), 1, "rate limit");
        p.set_task("halfway");
        p.flush();
        let s = state::read_status(&files).unwrap().unwrap();
        assert_eq!(s.processed, 100);
        assert_eq!(s.total, Some(200));
        assert_eq!(s.progress, 50.0);
        assert_eq!(s.current_task, "halfway");
        assert_eq!(s.state, State::Running);
    }
}
