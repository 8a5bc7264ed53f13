"""``python -m invenio_community_stats ...``: the same command group.

Inside an InvenioRDM instance (``invenio-app`` importable and not disabled with
``COMMUNITY_STATS_APP_MODE=standalone``) the commands run under the instance's app
(``invenio community-stats ...``); otherwise under the standalone app.
"""

import os
import sys


def _stop_on_sigterm():
    """In a managed background worker, SIGTERM asks the job to stop after its checkpoint:
    the handler raises JobCancelled, which the core's job loop sees at its next signal
    check (every 100 ms), finishing the batch in hand first."""
    import signal

    from .errors import JobCancelled

    def handler(signum, frame):
        raise JobCancelled("stopped on request (SIGTERM) after the last checkpoint")

    signal.signal(signal.SIGTERM, handler)


class _OutputToLog:
    """A managed worker's stdout/stderr: the supervisor's pipe (it copies the output into
    the job's log); once the pipe is broken (the supervisor was killed), the job's log file
    itself, appended to directly (never through a symlink)."""

    def __init__(self, stream, log_path):
        self._stream, self._log_path, self._log = stream, log_path, None

    def write(self, text):
        if self._log is None:
            try:
                written = self._stream.write(text)
                self._stream.flush()
                return written
            except (BrokenPipeError, OSError):
                fd = os.open(self._log_path, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC)
                self._log = os.fdopen(fd, "a", encoding="utf-8", errors="replace")
        written = self._log.write(text)
        self._log.flush()
        return written

    def flush(self):
        target = self._log or self._stream
        try:
            target.flush()
        except (BrokenPipeError, OSError):
            pass

    def isatty(self):
        return False

    def __getattr__(self, name):
        # Text attributes only: no `buffer`, so that nothing writes past this object.
        if name in ("encoding", "errors", "newlines", "name", "mode", "fileno"):
            return getattr(self._stream, name)
        raise AttributeError(name)


def _run_as_worker(run):
    """A managed background worker: SIGTERM stops the job after its checkpoint, its output
    survives the loss of its supervisor, and it records its own end (so a job that ran to
    its end is completed whatever happened to the supervisor)."""
    from ._bridge import core

    _stop_on_sigterm()
    try:
        log_path = core().job_files(os.environ["COMMUNITY_STATS_JOB_NAME"], os.environ["COMMUNITY_STATS_JOB_PID_DIR"])[
            "log"
        ]
        sys.stdout = _OutputToLog(sys.stdout, log_path)
        sys.stderr = _OutputToLog(sys.stderr, log_path)
    except Exception:  # noqa: BLE001 - the job runs on with the plain streams
        pass
    code = 1
    try:
        code = run()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        raise
    finally:
        try:
            core().record_job_end(int(code or 0))
        except Exception:  # noqa: BLE001 - the supervisor records it too
            pass
    return code


def main(argv=None):
    """Dispatch to the Invenio CLI or the standalone one."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if os.environ.get("COMMUNITY_STATS_JOB_NAME") and os.environ.get("COMMUNITY_STATS_JOB_PID_DIR"):
        return _run_as_worker(lambda: _dispatch(argv))
    return _dispatch(argv)


def _dispatch(argv):
    """The Invenio CLI (inside an instance) or the standalone one."""
    mode = os.environ.get("COMMUNITY_STATS_APP_MODE", "auto")
    if mode in ("auto", "invenio"):
        try:
            from invenio_app.cli import cli as invenio_cli
        except ImportError:
            if mode == "invenio":
                sys.stderr.write("Error: COMMUNITY_STATS_APP_MODE=invenio but invenio-app is not installed\n")
                return 1
        else:
            return invenio_cli.main(args=["community-stats", *argv], prog_name="invenio")
    from .cli import main as standalone_main

    return standalone_main(argv)


if __name__ == "__main__":
    sys.exit(main())
