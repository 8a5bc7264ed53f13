from __future__ import annotations

"""Typed stubs of the Rust extension ``invenio_community_stats._core``.

Every function takes the connection settings as the JSON document built by
``invenio_community_stats.connection.build_settings`` and returns JSON text; errors are
raised as the classes of ``invenio_community_stats.errors``.
"""

def version() -> str:
    """The core's version."""

def check_settings(settings_json: str) -> None:
    """Validate connection settings without connecting (raises ConfigError)."""

def cluster_info(settings_json: str) -> str:
    """Cluster name, version, health and the index families under the prefix (JSON)."""

def load_sample_data(settings_json: str, options_json: str) -> str:
    """Load the demo sample; returns the report (JSON)."""

def index_template(name: str, prefix: str) -> str:
    """One of our index templates with the prefix applied (JSON)."""

def index_template_names() -> list[str]:
    """The names of our index templates."""

def start_background(spec_json: str) -> str:
    """Start a job detached under a supervisor; returns {name, pid, supervisor_pid, pid_file, status_file, log_file} (JSON)."""

def supervise(spec_json: str) -> int:
    """Run one job's supervisor in this process; returns the worker's exit code."""

def process_status(name: str, pid_dir: str, log_lines: int | None = None) -> str:
    """A job's effective status (JSON), with ``log_tail`` when ``log_lines`` is given."""

def list_processes(pid_dir: str, all: bool) -> str:
    """The jobs in a PID directory (JSON list)."""

def cancel_process(name: str, pid_dir: str, timeout_seconds: float) -> str:
    """SIGTERM, wait, SIGKILL; returns {name, pid, outcome, state, seconds} (JSON)."""

def clean_processes(pid_dir: str, name: str | None = None) -> list[str]:
    """Remove the files of finished jobs; returns the names cleaned."""

def generate_community_events(settings_json: str, options_json: str) -> str:
    """Backfill stats-community-events (or count, with dry_run); returns the report (JSON)."""

def generate_usage_events(settings_json: str, options_json: str) -> str:
    """Synthetic view/download events; returns the report (JSON)."""

def measure_status_write(pid_dir: str, writes: int) -> float:
    """Diagnostics for bench/: mean seconds of one progress write into a status file."""

def migrate_events(settings_json: str, options_json: str) -> str:
    """Migrate legacy monthly event indices to enriched -v2.0.0 ones; returns the report (JSON)."""

def migration_status(settings_json: str, options_json: str) -> str:
    """Per month and event type: counts, checkpoint, state (JSON list)."""

def aggregate(settings_json: str, options_json: str) -> str:
    """Run the aggregation (usage delta, usage snapshot) under the lock; returns the report (JSON)."""

def read_aggregations(settings_json: str, options_json: str) -> str:
    """A community's aggregation documents over a date range, per kind (JSON)."""

def clear_aggregation_lock(settings_json: str) -> str:
    """Remove the aggregation lock; returns what was removed (JSON)."""

def aggregation_status(settings_json: str, options_json: str) -> str:
    """Per community and aggregator: bookmark, documents, first/last day, completeness (JSON rows)."""

def clear_bookmarks(settings_json: str, options_json: str) -> str:
    """Delete the selected aggregation bookmarks; returns the number deleted (JSON)."""

def destroy_indices(settings_json: str, include_community_events: bool, dry_run: bool) -> str:
    """The aggregation indices under the prefix, deleted unless dry_run (JSON list of [name, documents])."""
