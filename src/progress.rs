//! The one small progress API the batch loops use: `set_total`, `advance`, `set_task`.
//! In a managed background worker it updates the job's status file (atomically, at most
//! about once a second); in the foreground it logs a line every few seconds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::process::state::{self, State};
use crate::process::supervisor::worker_files_from_env;
use crate::process::ProcessFiles;

const UNKNOWN: u64 = u64::MAX;

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
    sink: Option<ProcessFiles>,
    writes: AtomicU64,
}

impl Progress {
    /// A reporter for the current process: the status file when running as a managed
    /// worker, the log otherwise.
    pub fn from_env(label: &str) -> Self {
        match worker_files_from_env() {
            Some(files) => Self::with_sink(label, Some(files), Duration::from_secs(1)),
            None => Self::with_sink(label, None, Duration::from_secs(5)),
        }
    }

    /// A reporter writing to `sink` (or logging) at most once per `interval`.
    pub fn with_sink(label: &str, sink: Option<ProcessFiles>, interval: Duration) -> Self {
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
            Some(files) => {
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
            None => {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::state::JobStatus;

    #[test]
    fn writes_progress_into_the_status_at_most_once_per_interval() {
        let dir = tempfile::tempdir().unwrap();
        let files = ProcessFiles::new(dir.path(), "aggregation").unwrap();
        state::replace_status(&files, &JobStatus::starting(&files, "x")).unwrap();
        let p = Progress::with_sink("test", Some(files.clone()), Duration::from_secs(3600));
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
