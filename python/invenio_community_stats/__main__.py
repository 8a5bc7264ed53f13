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


def main(argv=None):
    """Dispatch to the Invenio CLI or the standalone one."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if os.environ.get("COMMUNITY_STATS_JOB_NAME"):
        _stop_on_sigterm()
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
