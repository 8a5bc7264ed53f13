//! The one thin binding module: Python-callable entry points, one per command. Each
//! parses its JSON arguments, runs the core with the GIL released, and maps errors to
//! the exception classes of `invenio_community_stats.errors`.

use std::future::Future;
use std::time::Duration;

use pyo3::prelude::*;

use crate::cancel::CancelToken;
use crate::error::Error;
use crate::generation::{community_events, usage_events};
use crate::options::Validate;
use crate::process::{control, launcher, supervisor, ProcessFiles};
use crate::search::SearchClient;
use crate::settings::SearchSettings;
use crate::{aggregation, info, migration, runtime, sample, templates};

mod py_errors {
    pyo3::import_exception!(invenio_community_stats.errors, CommunityStatsError);
    pyo3::import_exception!(invenio_community_stats.errors, InvalidInputError);
    pyo3::import_exception!(invenio_community_stats.errors, ConfigError);
    pyo3::import_exception!(invenio_community_stats.errors, SearchConnectionError);
    pyo3::import_exception!(invenio_community_stats.errors, SearchAuthError);
    pyo3::import_exception!(invenio_community_stats.errors, SearchError);
    pyo3::import_exception!(invenio_community_stats.errors, DataError);
    pyo3::import_exception!(invenio_community_stats.errors, ProcessError);
    pyo3::import_exception!(invenio_community_stats.errors, ConflictError);
    pyo3::import_exception!(invenio_community_stats.errors, JobCancelled);
}

impl From<Error> for PyErr {
    fn from(err: Error) -> PyErr {
        let msg = err.to_string();
        match err {
            Error::InvalidInput(_) => py_errors::InvalidInputError::new_err(msg),
            Error::Config(_) => py_errors::ConfigError::new_err(msg),
            Error::Connection { .. } => py_errors::SearchConnectionError::new_err(msg),
            Error::Auth { .. } => py_errors::SearchAuthError::new_err(msg),
            Error::Search { .. } => py_errors::SearchError::new_err(msg),
            Error::Data(_) => py_errors::DataError::new_err(msg),
            Error::Process(_) => py_errors::ProcessError::new_err(msg),
            Error::Conflict(_) => py_errors::ConflictError::new_err(msg),
            Error::Internal(_) => py_errors::CommunityStatsError::new_err(msg),
            Error::Unavailable(_) => py_errors::SearchError::new_err(msg),
            Error::Cancelled(_) => py_errors::JobCancelled::new_err(msg),
            Error::Io { .. } => py_errors::CommunityStatsError::new_err(msg),
        }
    }
}

/// Converts a JSON value to Python objects (dict/list/str/int/float/bool/None), so that
/// callers need not import and run `json` (the process commands must start fast).
fn to_py(py: Python<'_>, value: &serde_json::Value) -> PyResult<Py<PyAny>> {
    use pyo3::types::{PyDict, PyList};
    use pyo3::IntoPyObjectExt;
    Ok(match value {
        serde_json::Value::Null => py.None(),
        serde_json::Value::Bool(b) => b.into_py_any(py)?,
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_py_any(py)?
            } else if let Some(u) = n.as_u64() {
                u.into_py_any(py)?
            } else {
                n.as_f64().unwrap_or(f64::NAN).into_py_any(py)?
            }
        }
        serde_json::Value::String(s) => s.into_py_any(py)?,
        serde_json::Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_py(py, item)?)?;
            }
            list.into_py_any(py)?
        }
        serde_json::Value::Object(map) => {
            let dict = PyDict::new(py);
            for (k, v) in map {
                dict.set_item(k, to_py(py, v)?)?;
            }
            dict.into_py_any(py)?
        }
    })
}

/// Rust `log` records reach Python `logging` from the first job call on (not at import:
/// importing `logging` would slow every process command).
fn ensure_logging() {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        // The TLS stack logs a refused certificate at ERROR level before the request fails;
        // the request's own error says it once, in the operator's terms (search.rs).
        let _ = Python::attach(|py| {
            pyo3_log::Logger::new(py, pyo3_log::Caching::LoggersAndLevels).map(|logger| {
                logger
                    .filter_target("rustls".to_owned(), log::LevelFilter::Off)
                    .filter_target("rustls_platform_verifier".to_owned(), log::LevelFilter::Off)
                    .install()
            })
        });
    });
}

fn to_json<T: serde::Serialize>(value: &T) -> PyResult<String> {
    serde_json::to_string(value).map_err(|e| py_errors::CommunityStatsError::new_err(e.to_string()))
}

fn parse_json<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> PyResult<T> {
    serde_json::from_str(text).map_err(|e| {
        // serde's position ("at line 1 column 178") means nothing to an operator.
        let message = e.to_string();
        let message = message
            .split(" at line ")
            .next()
            .unwrap_or(&message)
            .to_string();
        py_errors::InvalidInputError::new_err(format!("invalid options of {what}: {message}"))
    })
}

/// Runs a job future on a fresh runtime with the GIL released. Every 100 ms the calling
/// (main) thread lets Python run its signal handlers: Ctrl-C (KeyboardInterrupt) or a
/// handler that raises (SIGTERM in background workers) cancels the job, which finishes
/// the batch in hand and checkpoints; then the Python exception is raised.
pub(crate) fn run_job<T, F, Fut>(py: Python<'_>, make: F) -> PyResult<T>
where
    T: Send + 'static,
    F: FnOnce(CancelToken) -> Fut + Send,
    Fut: Future<Output = crate::error::Result<T>> + Send + 'static,
{
    ensure_logging();
    let token = CancelToken::new();
    let rt = runtime::build()?;
    let mut interrupted: Option<PyErr> = None;
    let outcome = py.detach(|| {
        let handle = rt.spawn(make(token.clone()));
        rt.block_on(async {
            tokio::pin!(handle);
            loop {
                tokio::select! {
                    joined = &mut handle => return joined,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {
                        if interrupted.is_none() {
                            if let Err(e) = Python::attach(|py| py.check_signals()) {
                                log::warn!("interrupted: finishing the batch in hand, then stopping");
                                interrupted = Some(e);
                                token.cancel();
                            }
                        }
                    }
                }
            }
        })
    });
    drop(rt);
    if let Some(e) = interrupted {
        return Err(e);
    }
    match outcome {
        Ok(result) => result.map_err(PyErr::from),
        Err(join) => Err(py_errors::CommunityStatsError::new_err(format!(
            "job panicked: {join}"
        ))),
    }
}

/// One search job: settings and options checked up front (bad input needs no runtime),
/// then a client and the job's progress reporter, the job run by [`run_job`], its result
/// as Python objects.
fn run_search_job<O, T, F, Fut>(
    py: Python<'_>,
    settings_json: &str,
    options_json: &str,
    label: &'static str,
    job: F,
) -> PyResult<Py<PyAny>>
where
    O: serde::de::DeserializeOwned + Send + 'static,
    T: serde::Serialize + Send + 'static,
    F: FnOnce(SearchClient, O, crate::progress::Progress) -> Fut + Send + 'static,
    Fut: Future<Output = crate::error::Result<T>> + Send + 'static,
{
    let settings = SearchSettings::from_json(settings_json)?;
    let options: O = parse_json(label, options_json)?;
    let report = run_job(py, move |token| async move {
        let client = SearchClient::new(&settings, token)?;
        job(client, options, crate::progress::Progress::from_env(label)).await
    })?;
    to_py(
        py,
        &serde_json::to_value(&report)
            .map_err(|e| py_errors::CommunityStatsError::new_err(e.to_string()))?,
    )
}

/// Options of a command that takes none.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NoOptions {}

/// Options of `destroy-indices`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DestroyOptions {
    include_community_events: bool,
    dry_run: bool,
}

fn client(settings_json: &str, token: CancelToken) -> PyResult<SearchClient> {
    let settings = SearchSettings::from_json(settings_json)?;
    Ok(SearchClient::new(&settings, token)?)
}

/// The core's version.
#[pyfunction]
fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// A search command: a `#[pyfunction] name(settings_json, options_json)` that parses the
/// options as `$options: $type` and runs `$body` with the client and the job's progress
/// reporter (see [`run_search_job`]).
macro_rules! search_command {
    ($(#[$doc:meta])* $name:ident, $label:literal, |$client:ident, $options:ident: $type:ty, $progress:ident| $body:expr) => {
        $(#[$doc])*
        #[pyfunction]
        fn $name(py: Python<'_>, settings_json: &str, options_json: &str) -> PyResult<Py<PyAny>> {
            run_search_job(py, settings_json, options_json, $label, |$client, $options: $type, $progress| async move {
                $body.await
            })
        }
    };
}

search_command!(
    /// `info`: the cluster and the index families under the prefix.
    cluster_info, "info", |client, _options: NoOptions, _progress| info::cluster_info(&client)
);
search_command!(
    /// `load-sample-data`: the sample's report.
    load_sample_data, "load-sample-data", |client, options: sample::SampleOptions, _progress| sample::load(&client, &options)
);
search_command!(
    /// `generate-community-events`: its report.
    generate_community_events, "generate-community-events",
    |client, options: community_events::CommunityEventsOptions, progress| community_events::generate(&client, &options, &progress)
);
search_command!(
    /// `generate-usage-events`: its report.
    generate_usage_events, "generate-usage-events",
    |client, options: usage_events::UsageEventsOptions, progress| usage_events::generate(&client, &options, &progress)
);
search_command!(
    /// `migrate-events` / `migrate-month`: the report.
    migrate_events, "migrate-events", |client, options: migration::MigrationOptions, progress| migration::run(&client, &options, &progress)
);
search_command!(
    /// `enable-dashboards`: the communities it acts on.
    dashboard_candidates, "enable-dashboards",
    |client, options: crate::communities::DashboardSelection, _progress| crate::communities::dashboard_candidates(&client, &options)
);
search_command!(
    /// `clear-migration-checkpoints`: the months cleared and skipped.
    clear_migration_checkpoints, "clear-migration-checkpoints",
    |client, options: migration::MonthSelection, _progress| migration::clear_checkpoints(&client, &options)
);
search_command!(
    /// `migration-status`: one row per month and event type.
    migration_status, "migration-status", |client, options: migration::MonthSelection, _progress| migration::status(&client, &options)
);
search_command!(
    /// `aggregate`: the report.
    aggregate, "aggregate", |client, options: aggregation::AggregateOptions, progress| aggregation::run(&client, &options, &progress)
);
search_command!(
    /// `read`: a community's documents per kind.
    read_aggregations, "read", |client, options: aggregation::read::ReadOptions, _progress| aggregation::read::read(&client, &options)
);
search_command!(
    /// `clear-lock`: what was removed.
    clear_lock, "clear-lock", |client, options: crate::lock::ClearLockOptions, _progress| crate::lock::clear_command(&client, &options)
);
search_command!(
    /// `status` of the aggregations: one row per community and aggregator.
    aggregation_status, "status",
    |client, options: aggregation::maintenance::SelectOptions, _progress| aggregation::maintenance::status(&client, &options)
);
search_command!(
    /// `clear-bookmarks`: the number deleted.
    clear_bookmarks, "clear-bookmarks",
    |client, options: aggregation::maintenance::SelectOptions, _progress| aggregation::maintenance::clear_bookmarks(&client, &options)
);
search_command!(
    /// `destroy-indices`: the aggregation indices under the prefix (`[name, documents]`),
    /// deleted unless `dry_run`.
    destroy_indices, "destroy-indices",
    |client, options: DestroyOptions, _progress| aggregation::maintenance::destroy_indices(&client, options.include_community_events, options.dry_run)
);

/// One of our index templates with the prefix applied (JSON).
#[pyfunction]
fn index_template(name: &str, prefix: &str) -> PyResult<String> {
    to_json(&templates::template(name, prefix)?)
}

/// The aggregators in run order: `(name, read kind)` each.
#[pyfunction]
fn aggregators() -> Vec<(&'static str, &'static str)> {
    crate::aggregation::Aggregator::ALL
        .iter()
        .map(|a| (a.name(), a.read_kind().0))
        .collect()
}

/// The names of our index templates.
#[pyfunction]
fn index_template_names() -> Vec<&'static str> {
    templates::names()
}

/// The usage event fields the usage delta reads (bench/: its point-in-time floor reads the
/// same).
#[pyfunction]
fn usage_event_fields() -> Vec<String> {
    crate::aggregation::usage_fold::source_fields()
}

/// Diagnostics for bench/: the mean seconds of one progress write into a status file
/// (read, merge, temp file, fsync, rename, directory fsync, under the write lock), over
/// `writes` writes into a throw-away job `bench-status-write` in `pid_dir`.
#[pyfunction]
fn measure_status_write(pid_dir: &str, writes: u32) -> PyResult<f64> {
    let files = ProcessFiles::new(std::path::Path::new(pid_dir), "bench-status-write")?;
    crate::process::files::prepare_dir(&files.dir, true)?;
    crate::process::state::replace_status(
        &files,
        &crate::process::JobStatus::starting(&files, "bench"),
    )?;
    let progress = crate::progress::Progress::with_sink(
        "bench",
        crate::progress::Sink::Status(files.clone()),
        Duration::from_secs(3600),
    );
    progress.set_total(u64::from(writes));
    let started = std::time::Instant::now();
    for _ in 0..writes.max(1) {
        progress.advance(1);
        progress.flush();
    }
    let per_write = started.elapsed().as_secs_f64() / f64::from(writes.max(1));
    for path in [&files.status, &files.lock] {
        let _ = std::fs::remove_file(path);
    }
    Ok(per_write)
}

/// Checks a job's options without the cluster, as the job would first thing (what a
/// background twin does before it starts the job); `command` names the core function the
/// job runs.
#[pyfunction]
fn validate_options(command: &str, options_json: &str) -> PyResult<()> {
    fn check<O: serde::de::DeserializeOwned + Validate>(label: &str, json: &str) -> PyResult<()> {
        let options: O = parse_json(label, json)?;
        Ok(options.validate()?)
    }
    match command {
        "load_sample_data" => check::<sample::SampleOptions>(command, options_json),
        "generate_community_events" => {
            check::<community_events::CommunityEventsOptions>(command, options_json)
        }
        "generate_usage_events" => check::<usage_events::UsageEventsOptions>(command, options_json),
        "migrate_events" => check::<migration::MigrationOptions>(command, options_json),
        "aggregate" => check::<aggregation::AggregateOptions>(command, options_json),
        other => Err(Error::invalid(format!("{other:?} is not a job of the core")).into()),
    }
}

/// Records the error of the job this process runs as a managed worker (the status shows
/// it once the job has failed); nothing outside a managed worker.
#[pyfunction]
fn record_job_error(message: &str) -> PyResult<()> {
    Ok(supervisor::record_worker_error(message)?)
}

/// Records, from a managed worker, how it ends (see `supervisor::record_worker_end`).
#[pyfunction]
fn record_job_end(exit_code: i32) -> PyResult<()> {
    Ok(supervisor::record_worker_end(exit_code)?)
}

/// The paths of a job's files (`pid`, `status`, `log`, `lock`).
#[pyfunction]
fn job_files(
    name: &str,
    pid_dir: &str,
) -> PyResult<std::collections::BTreeMap<&'static str, String>> {
    let files = ProcessFiles::new(std::path::Path::new(pid_dir), name)?;
    Ok([
        ("pid", &files.pid),
        ("status", &files.status),
        ("log", &files.log),
        ("lock", &files.lock),
    ]
    .into_iter()
    .map(|(k, p)| (k, p.display().to_string()))
    .collect())
}

/// Checks connection settings without connecting (raises ConfigError).
#[pyfunction]
fn check_settings(settings_json: &str) -> PyResult<()> {
    let _ = client(settings_json, CancelToken::new())?;
    Ok(())
}

/// Starts a job detached under a supervisor (JSON job spec in, JSON start result out).
#[pyfunction]
fn start_background(py: Python<'_>, spec_json: &str) -> PyResult<Py<PyAny>> {
    let spec: supervisor::JobSpec = parse_json("job spec", spec_json)?;
    let outcome = py.detach(|| launcher::start(&spec))?;
    to_py(py, &serde_json::to_value(&outcome).expect("serialises"))
}

/// Runs the supervisor of one job (in its own process); returns the worker's exit code.
#[pyfunction]
fn supervise(py: Python<'_>, spec_json: &str) -> PyResult<i32> {
    let spec: supervisor::JobSpec = parse_json("job spec", spec_json)?;
    Ok(py.detach(|| {
        let mut out = std::io::stdout();
        supervisor::supervise(&spec, &mut out)
    })?)
}

/// A job's status as JSON (with the last `log_lines` log lines when given).
#[pyfunction]
#[pyo3(signature = (name, pid_dir, log_lines=None))]
fn process_status(
    py: Python<'_>,
    name: &str,
    pid_dir: &str,
    log_lines: Option<usize>,
) -> PyResult<Py<PyAny>> {
    let files = ProcessFiles::new(std::path::Path::new(pid_dir), name)?;
    crate::process::files::prepare_dir(&files.dir, false)?;
    to_py(py, &control::view(&files, log_lines)?)
}

/// The jobs of a PID directory as JSON (running ones unless `all`).
#[pyfunction]
fn list_processes(py: Python<'_>, pid_dir: &str, all: bool) -> PyResult<Py<PyAny>> {
    to_py(
        py,
        &serde_json::Value::Array(control::list(std::path::Path::new(pid_dir), all)?),
    )
}

/// Cancels a job: SIGTERM, wait `timeout_seconds`, SIGKILL (JSON result).
#[pyfunction]
fn cancel_process(
    py: Python<'_>,
    name: &str,
    pid_dir: &str,
    timeout_seconds: f64,
) -> PyResult<Py<PyAny>> {
    if !timeout_seconds.is_finite() || timeout_seconds < 0.0 {
        return Err(Error::invalid("timeout must be a non-negative number of seconds").into());
    }
    let files = ProcessFiles::new(std::path::Path::new(pid_dir), name)?;
    crate::process::files::prepare_dir(&files.dir, false)?;
    let outcome =
        py.detach(|| control::cancel(&files, Duration::from_secs_f64(timeout_seconds)))?;
    to_py(py, &serde_json::to_value(&outcome).expect("serialises"))
}

/// Removes the files of finished jobs; returns the names cleaned.
#[pyfunction]
#[pyo3(signature = (pid_dir, name=None))]
fn clean_processes(pid_dir: &str, name: Option<&str>) -> PyResult<Vec<String>> {
    if let Some(n) = name {
        crate::process::validate_name(n)?;
    }
    Ok(control::clean(std::path::Path::new(pid_dir), name)?)
}

#[pymodule]
#[pyo3(name = "_core")]
fn core_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(version, m)?)?;
    m.add_function(wrap_pyfunction!(cluster_info, m)?)?;
    m.add_function(wrap_pyfunction!(load_sample_data, m)?)?;
    m.add_function(wrap_pyfunction!(generate_community_events, m)?)?;
    m.add_function(wrap_pyfunction!(generate_usage_events, m)?)?;
    m.add_function(wrap_pyfunction!(migrate_events, m)?)?;
    m.add_function(wrap_pyfunction!(migration_status, m)?)?;
    m.add_function(wrap_pyfunction!(aggregate, m)?)?;
    m.add_function(wrap_pyfunction!(read_aggregations, m)?)?;
    m.add_function(wrap_pyfunction!(clear_lock, m)?)?;
    m.add_function(wrap_pyfunction!(dashboard_candidates, m)?)?;
    m.add_function(wrap_pyfunction!(clear_migration_checkpoints, m)?)?;
    m.add_function(wrap_pyfunction!(aggregation_status, m)?)?;
    m.add_function(wrap_pyfunction!(clear_bookmarks, m)?)?;
    m.add_function(wrap_pyfunction!(destroy_indices, m)?)?;
    m.add_function(wrap_pyfunction!(index_template, m)?)?;
    m.add_function(wrap_pyfunction!(index_template_names, m)?)?;
    m.add_function(wrap_pyfunction!(usage_event_fields, m)?)?;
    m.add_function(wrap_pyfunction!(aggregators, m)?)?;
    m.add_function(wrap_pyfunction!(check_settings, m)?)?;
    m.add_function(wrap_pyfunction!(start_background, m)?)?;
    m.add_function(wrap_pyfunction!(supervise, m)?)?;
    m.add_function(wrap_pyfunction!(record_job_error, m)?)?;
    m.add_function(wrap_pyfunction!(record_job_end, m)?)?;
    m.add_function(wrap_pyfunction!(job_files, m)?)?;
    m.add_function(wrap_pyfunction!(validate_options, m)?)?;
    m.add_function(wrap_pyfunction!(process_status, m)?)?;
    m.add_function(wrap_pyfunction!(list_processes, m)?)?;
    m.add_function(wrap_pyfunction!(cancel_process, m)?)?;
    m.add_function(wrap_pyfunction!(clean_processes, m)?)?;
    m.add_function(wrap_pyfunction!(measure_status_write, m)?)?;
    Ok(())
}
