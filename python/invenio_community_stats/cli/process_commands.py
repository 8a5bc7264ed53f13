"""Watching and controlling background jobs: ``process-status``, ``cancel-process``,
``list-processes`` and the same under ``processes status|cancel|list|clean``.
These commands never build the Flask app unless they must find the PID directory in an
instance's configuration."""

import datetime
import os
import sys
import time

import click

from .. import processes
from .background import pid_dir_option
from .group import BadInput, CommunityStatsGroup, FiniteFloat, community_stats, echo_json


def pid_dir_flag(f):
    """Adds ``--pid-dir`` to a command function."""
    option = pid_dir_option()
    f.__click_params__ = [*getattr(f, "__click_params__", []), option]
    return f


FINAL = ("completed", "failed", "cancelled", "killed", "lost")

#: The job ``status`` and ``cancel`` mean when no NAME is given (the reference's default).
DEFAULT_NAME = "event-migration"


def resolve_pid_dir(pid_dir):
    """``--pid-dir``, else ``INVENIO_COMMUNITY_STATS_PID_DIR``, else the instance's
    ``COMMUNITY_STATS_PID_DIR`` when running under ``invenio``, else its default."""
    if pid_dir is not None:
        if not pid_dir:
            raise BadInput("--pid-dir must not be empty")
        return pid_dir
    env = os.environ.get("INVENIO_COMMUNITY_STATS_PID_DIR")
    if env:
        return env
    ctx = click.get_current_context()
    obj = ctx.find_root().obj
    if obj is not None and getattr(obj, "create_app", None) is not None:
        app = obj.load_app()
        return app.config.get("COMMUNITY_STATS_PID_DIR") or processes.DEFAULT_PID_DIR
    return processes.DEFAULT_PID_DIR


def _hms(seconds):
    if seconds is None:
        return "-"
    seconds = int(max(0, seconds))
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _when(epoch):
    if not epoch:
        return "-"
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def format_status(s):
    """The human-readable status block."""
    lines = [f"Process: {s['name']}", "=" * 50]
    lines.append(f"PID: {s.get('pid') or '-'} (supervisor {s.get('supervisor_pid') or '-'})")
    lines.append(f"State: {s['state']}")
    lines.append(f"Started: {_when(s.get('start_time'))}")
    lines.append(f"Runtime: {_hms(s.get('runtime_seconds'))}")
    total = s.get("total")
    pct = s.get("progress") or 0.0
    filled = int(pct / 2)
    if total is not None:
        lines.append(f"Progress: [{'#' * filled}{'-' * (50 - filled)}] {pct:.1f}%")
    done = f"{s.get('processed', 0)}" + (f" / {total}" if total is not None else "")
    rate = s.get("rate")
    lines.append(f"Processed: {done}" + (f" ({rate:.1f}/s)" if rate else ""))
    if s.get("eta_seconds") is not None and s["state"] in ("running", "cancelling"):
        lines.append(f"ETA: {_hms(s['eta_seconds'])}")
    lines.append(f"Current task: {s.get('current_task') or '-'}")
    lines.append(f"Command: {s.get('command') or '-'}")
    if s["state"] in FINAL:
        lines.append(f"Ended: {_when(s.get('end_time'))}")
        if s.get("exit_code") is not None:
            lines.append(f"Exit code: {s['exit_code']}")
    if s.get("cancel_outcome"):
        lines.append(f"Cancel: {s['cancel_outcome']}")
    if s.get("error"):
        lines.append(f"Error: {s['error']}")
    if s.get("warning"):
        lines.append(f"Warning: {s['warning']}")
    lines.append(f"Log: {s.get('log_file')}")
    return "\n".join(lines)


def _status(name, pid_dir, show_log, log_lines, as_json, follow, interval):
    if log_lines is not None and log_lines <= 0:
        raise BadInput("--log-lines must be a positive number")
    if follow and as_json:
        raise BadInput("--follow and --json cannot be combined")
    if interval <= 0:
        raise BadInput("--interval must be positive")
    pid_dir = resolve_pid_dir(pid_dir)
    lines = (log_lines or 20) if show_log else None
    while True:
        s = processes.status(name, pid_dir, lines)
        if as_json:
            echo_json(s)
            return
        text = format_status(s)
        if show_log:
            text += f"\n\nRecent log output:\n{'-' * 50}\n{s.get('log_tail') or '(empty)'}"
        if follow and sys.stdout.isatty():
            click.echo("\x1b[H\x1b[2J", nl=False)
        click.echo(text)
        if follow and s["state"] in ("failed", "killed", "lost"):
            # A script following a job learns how it ended from the exit code.
            raise click.exceptions.Exit(1)
        if not follow or s["state"] in FINAL:
            return
        click.echo("")
        time.sleep(interval)


def _status_params(f):
    for decorator in reversed(
        [
            click.argument("name", default=DEFAULT_NAME),
            click.option("--show-log", is_flag=True, help="Show the end of the log."),
            click.option("--log-lines", type=int, default=None, help="Log lines to show (default 20)."),
            click.option("--json", "as_json", is_flag=True, help="Print one JSON document."),
            click.option("--follow", is_flag=True, help="Refresh until the job ends."),
            click.option(
                "--interval", type=FiniteFloat(), default=2.0, show_default=True, help="Seconds between refreshes."
            ),
        ]
    ):
        f = decorator(f)
    return pid_dir_flag(f)


def _cancel(name, pid_dir, timeout, as_json):
    if timeout < 0:
        raise BadInput("--timeout must not be negative")
    pid_dir = resolve_pid_dir(pid_dir)
    result = processes.cancel(name, pid_dir, timeout)
    if as_json:
        echo_json(result)
        return
    if result["outcome"] == "graceful":
        click.echo(
            f"{name} (PID {result['pid']}) stopped after SIGTERM in {result['seconds']:.1f} s: {result['state']}."
        )
    else:
        click.echo(
            f"{name} (PID {result['pid']}) did not stop within {timeout:g} s: sent SIGKILL; "
            f"final state {result['state']}."
        )


def _list(pid_dir, show_all, as_json):
    pid_dir = resolve_pid_dir(pid_dir)
    jobs = processes.list_jobs(pid_dir, show_all)
    if as_json:
        echo_json(jobs)
        return
    if not jobs:
        click.echo(f"No {'' if show_all else 'running '}background jobs in {pid_dir}.")
        return
    rows = [f"{'NAME':32} {'STATE':11} {'PID':>8} {'PROGRESS':>9} {'RUNTIME':>9}  TASK"]
    for j in jobs:
        pct = f"{j.get('progress', 0):.1f}%" if j.get("total") is not None else "-"
        rows.append(
            f"{j['name']:32} {j['state']:11} {j.get('pid') or '-':>8} {pct:>9} "
            f"{_hms(j.get('runtime_seconds')):>9}  {j.get('current_task') or j.get('error') or ''}"
        )
    running = sum(1 for j in jobs if j.get("alive"))
    rows.append(f"{len(jobs)} job(s), {running} running. Details: process-status NAME --pid-dir {pid_dir}")
    click.echo("\n".join(rows))


# Each command is defined once and registered under both spellings: the seed's flat
# names (process-status, cancel-process, list-processes) and the grouped ones
# (processes status|cancel|list).
@click.command("process-status")
@_status_params
def process_status(name, show_log, log_lines, as_json, follow, interval, pid_dir):
    """Show a background job's state, progress, exit code and log."""
    _status(name, pid_dir, show_log, log_lines, as_json, follow, interval)


@click.command("cancel-process")
@click.argument("name", default=DEFAULT_NAME)
@click.option(
    "--timeout",
    type=FiniteFloat(),
    default=30.0,
    show_default=True,
    help="Seconds to wait after SIGTERM before SIGKILL.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@pid_dir_flag
def cancel_process(name, timeout, as_json, pid_dir):
    """Stop a background job: SIGTERM (it checkpoints and exits), SIGKILL after --timeout."""
    _cancel(name, pid_dir, timeout, as_json)


@click.command("list-processes")
@click.option("--all", "show_all", is_flag=True, help="Also finished jobs.")
@click.option(
    "--package-only",
    is_flag=True,
    hidden=True,
    help="The reference's filter: only this package's jobs, which is all this command ever lists.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@pid_dir_flag
def list_processes(show_all, package_only, as_json, pid_dir):
    """List background jobs (running ones unless --all)."""
    _list(pid_dir, show_all, as_json)


@community_stats.group("processes", cls=CommunityStatsGroup)
def processes_group():
    """Background jobs: status, cancel, list, clean."""


for _flat, _grouped, _command in [
    ("process-status", "status", process_status),
    ("cancel-process", "cancel", cancel_process),
    ("list-processes", "list", list_processes),
]:
    community_stats.add_command(_command, _flat)
    processes_group.add_command(_command, _grouped)


@processes_group.command("clean")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@pid_dir_flag
def processes_clean(name, as_json, pid_dir):
    """Remove the files of finished jobs (all, or NAME). Running jobs are left alone."""
    pid_dir = resolve_pid_dir(pid_dir)
    cleaned = processes.clean(pid_dir, name)
    if as_json:
        echo_json(cleaned)
        return
    click.echo(f"Removed the files of {len(cleaned)} finished job(s)" + (f": {', '.join(cleaned)}" if cleaned else "."))
