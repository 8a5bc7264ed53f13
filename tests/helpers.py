"""Small helpers the test modules share (the fixtures are in ``conftest.py``)."""

import importlib.machinery
import importlib.util
import json
import os
import socket
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


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


def load_script(name):
    """One of ``scripts/`` (a Python script without a ``.py`` suffix) as a module, so that a
    test uses the script's own functions instead of a copy."""
    loader = importlib.machinery.SourceFileLoader(name.replace("-", "_"), str(SCRIPTS / name))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
    loader.exec_module(module)
    return module


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on (free when this returns)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
