"""Python API of the background process manager (the same code the CLI uses)::

    from invenio_community_stats import processes

    started = processes.start("my-job", [sys.executable, "-m", "invenio_community_stats", "info"])
    processes.status("my-job")            # dict: state, pid, progress, processed, total, ...
    processes.cancel("my-job", timeout=30)
    processes.list_jobs(all=True)
    processes.clean()

The PID directory defaults to ``COMMUNITY_STATS_PID_DIR``'s default (``pid_dir=``
everywhere), the log size and backups to theirs (:mod:`invenio_community_stats.config`).
Errors raise the classes of :mod:`invenio_community_stats.errors`.
"""

import os
import sys

from ._bridge import check_text
from ._bridge import core as _core
from .config import COMMUNITY_STATS_LOG_BACKUPS, COMMUNITY_STATS_LOG_MAX_BYTES, COMMUNITY_STATS_PID_DIR
from .errors import InvalidInputError

#: The PID directory when none is given.
DEFAULT_PID_DIR = COMMUNITY_STATS_PID_DIR


def _dir(pid_dir):
    if pid_dir is None:
        return DEFAULT_PID_DIR
    path = os.fspath(pid_dir)
    if not path:
        raise InvalidInputError("--pid-dir must not be empty")
    check_text(path, "--pid-dir")
    return path


def _name(name):
    check_text(name, "process name")
    return name


def start(name, argv, pid_dir=None, command=None, env=None, log_max_bytes=None, log_backups=None):
    """Start ``argv`` detached as job ``name``; returns ``{pid, supervisor_pid, pid_file,
    status_file, log_file}``. ``env`` is added to the worker's environment (it may hold
    secrets: it is never written to a file or a command line). ``command`` is what the
    status shows (default: ``argv`` joined)."""
    import json

    spec = {
        "name": _name(name),
        "pid_dir": _dir(pid_dir),
        "argv": [os.fspath(a) for a in argv],
        "command": command if command is not None else " ".join(os.fspath(a) for a in argv),
        "env": dict(env or {}),
        "log_max_bytes": int(COMMUNITY_STATS_LOG_MAX_BYTES if log_max_bytes is None else log_max_bytes),
        "log_backups": int(COMMUNITY_STATS_LOG_BACKUPS if log_backups is None else log_backups),
        "supervisor_argv": [sys.executable, "-m", "invenio_community_stats._supervisor"],
    }
    return _core().start_background(json.dumps(spec))


def status(name, pid_dir=None, log_lines=None):
    """The job's status (a dict; ``log_tail`` too when ``log_lines`` is given)."""
    return _core().process_status(_name(name), _dir(pid_dir), log_lines)


def list_jobs(pid_dir=None, all=False):  # noqa: A002 - mirrors the --all option
    """The jobs in the PID directory: running ones, or all with ``all=True``."""
    return _core().list_processes(_dir(pid_dir), bool(all))


def cancel(name, pid_dir=None, timeout=30.0):
    """SIGTERM, wait ``timeout`` seconds, then SIGKILL; returns ``{outcome, state, ...}``."""
    return _core().cancel_process(_name(name), _dir(pid_dir), float(timeout))


def clean(pid_dir=None, name=None):
    """Remove the files of finished jobs (or of job ``name``); returns the names cleaned."""
    return list(_core().clean_processes(_dir(pid_dir), None if name is None else _name(name)))


__all__ = ["start", "status", "list_jobs", "cancel", "clean", "DEFAULT_PID_DIR"]
