"""Typed stubs of the Rust extension ``invenio_community_stats._core``.

Call it through :mod:`invenio_community_stats._bridge` (search commands) and
:mod:`invenio_community_stats.processes` (background jobs). Search commands take the
connection settings (the JSON document of ``invenio_community_stats.connection``) and their
options as JSON text, and return Python objects; errors are raised as the classes of
``invenio_community_stats.errors``.
"""

from typing import Any

def version() -> str:
    """The core's version (``Cargo.toml``)."""

def check_settings(settings_json: str) -> None:
    """Validate connection settings without connecting (raises ConfigError)."""

# ---------------------------------------------------------------- search commands
def cluster_info(settings_json: str, options_json: str) -> dict[str, Any]:
    """Cluster name, version, health and the index families under the prefix."""

def load_sample_data(settings_json: str, options_json: str) -> dict[str, Any]:
    """Load the sample (InvenioRDM's mappings, real shapes); returns the report."""

def generate_community_events(settings_json: str, options_json: str) -> dict[str, Any]:
    """Backfill stats-community-events (or count, with dry_run); returns the report."""

def generate_usage_events(settings_json: str, options_json: str) -> dict[str, Any]:
    """Synthetic view/download events; returns the report."""

def migrate_events(settings_json: str, options_json: str) -> dict[str, Any]:
    """Migrate legacy monthly event indices to enriched -v2.0.0 ones; returns the report."""

def migration_status(settings_json: str, options_json: str) -> list[dict[str, Any]]:
    """Per month and event type: counts, checkpoint, state, read alias."""

def aggregate(settings_json: str, options_json: str) -> dict[str, Any]:
    """Run the aggregation under the lock; returns the report."""

def read_aggregations(settings_json: str, options_json: str) -> dict[str, Any]:
    """A community's aggregation documents over a date range, per kind."""

def clear_lock(settings_json: str, options_json: str) -> dict[str, Any]:
    """List the cluster locks ({locks}) or remove one ({name, removed, lock}; dry: would_remove)."""

def dashboard_candidates(settings_json: str, options_json: str) -> list[dict[str, Any]]:
    """The communities enable-dashboards acts on: [{id, slug, enabled, events, first_event, last_event}]."""

def clear_migration_checkpoints(settings_json: str, options_json: str) -> dict[str, Any]:
    """Forget the selected months' migration state; returns {cleared, skipped}."""

def aggregation_status(settings_json: str, options_json: str) -> list[dict[str, Any]]:
    """Per community and aggregator: bookmark, documents, first/last day, completeness."""

def clear_bookmarks(settings_json: str, options_json: str) -> int:
    """Delete the selected aggregation bookmarks; returns the number deleted."""

def destroy_indices(settings_json: str, options_json: str) -> list[list[Any]]:
    """The aggregation indices under the prefix as [name, documents], deleted unless dry_run."""

# ---------------------------------------------------------------- tables
def index_template(name: str, prefix: str) -> str:
    """One of our index templates with the prefix applied (JSON text)."""

def index_template_names() -> list[str]:
    """The names of our index templates."""

def usage_event_fields() -> list[str]:
    """The usage event fields the usage delta reads."""

def aggregators() -> list[tuple[str, str]]:
    """The aggregators in run order: (name, read kind)."""

# ---------------------------------------------------------------- background jobs
def start_background(spec_json: str) -> dict[str, Any]:
    """Start a job detached under a supervisor; returns {name, pid, supervisor_pid, pid_file, status_file, log_file}."""

def supervise(spec_json: str) -> int:
    """Run one job's supervisor in this process; returns the worker's exit code."""

def record_job_error(message: str) -> None:
    """In a managed worker, record the job's error in its status file; elsewhere nothing."""

def record_job_end(exit_code: int) -> None:
    """In a managed worker, record how the job ends (completed, cancelled, failed); elsewhere nothing."""

def job_files(name: str, pid_dir: str) -> dict[str, str]:
    """The paths of a job's files: pid, status, log, lock."""

def validate_options(command: str, options_json: str) -> None:
    """Check a job's options as the core checks them first thing (raises InvalidInputError)."""

def process_status(name: str, pid_dir: str, log_lines: int | None = None) -> dict[str, Any]:
    """A job's effective status, with ``log_tail`` when ``log_lines`` is given."""

def list_processes(pid_dir: str, all: bool) -> list[dict[str, Any]]:
    """The jobs in a PID directory."""

def cancel_process(name: str, pid_dir: str, timeout_seconds: float) -> dict[str, Any]:
    """SIGTERM, wait, SIGKILL; returns {name, pid, outcome, state, seconds}."""

def clean_processes(pid_dir: str, name: str | None = None) -> list[str]:
    """Remove the files of finished jobs; returns the names cleaned."""

def measure_status_write(pid_dir: str, writes: int) -> float:
    """Diagnostics for bench/: mean seconds of one progress write into a status file."""
