"""Small helpers the test modules share (the fixtures are in ``conftest.py``)."""

import json
import os


def js(proc):
    """The JSON document a CLI run printed, after checking that it succeeded."""
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def ids(search, pattern):
    """The sorted `_id`s of every document of ``pattern``."""
    return sorted(h["_id"] for h in search.scan(pattern))


def base_env(**extra):
    """This process's environment without ``INVENIO_*`` settings, in standalone mode, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INVENIO_")}
    env["COMMUNITY_STATS_APP_MODE"] = "standalone"
    env.update(extra)
    return env
