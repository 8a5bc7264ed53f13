"""The command-line surface without a cluster: import safety, help, one-line errors and
exit codes."""

import http.server
import os
import subprocess
import sys
import threading

import pytest

from conftest import run_cli
from helpers import base_env


def test_cli_module_does_not_import_the_rust_extension():
    code = (
        "import sys, invenio_community_stats.cli, invenio_community_stats.ext, invenio_community_stats;"
        "assert 'invenio_community_stats._core' not in sys.modules, 'imported at module top'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_help_lists_commands():
    proc = run_cli(["--help"], base_env())
    assert proc.returncode == 0
    for name in ("info", "load-sample-data"):
        assert name in proc.stdout


def test_unreachable_cluster_is_one_line_naming_host_not_password():
    proc = run_cli(["--search-host", "http://admin:hunter2@127.0.0.1:9", "info"], base_env())
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "127.0.0.1:9" in lines[0]
    assert "hunter2" not in proc.stderr + proc.stdout


def test_bad_search_hosts_from_environment():
    proc = run_cli(["info"], base_env(INVENIO_SEARCH_HOSTS="['ftp://x:1']"))
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0
    assert "scheme must be http or https" in proc.stderr


def test_usage_errors_exit_2_with_one_line():
    for args in (["no-such-command"], ["load-sample-data", "--records", "0"], ["info", "--bogus"]):
        proc = run_cli(args, base_env())
        assert proc.returncode == 2, (args, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_bad_index_prefix_is_a_config_error():
    proc = run_cli(["--index-prefix", "bad prefix", "info"], base_env())
    assert proc.returncode == 1
    assert "SEARCH_INDEX_PREFIX" in proc.stderr


class _Reject401(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server API
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"error":"unauthorized"}')

    def log_message(self, *args):
        pass


def test_wrong_credentials_are_reported_without_the_password():
    # A socket that answers 401 like a secured cluster does: the only way to exercise the
    # auth-error path here, since the test node runs without the security plugin.
    server = http.server.HTTPServer(("127.0.0.1", 0), _Reject401)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        proc = run_cli(["--search-host", f"http://admin:wrong-pw@127.0.0.1:{port}", "info"], base_env())
    finally:
        server.shutdown()
    assert proc.returncode == 1
    assert "rejected the credentials" in proc.stderr
    assert f"127.0.0.1:{port}" in proc.stderr
    assert "wrong-pw" not in proc.stderr + proc.stdout


def test_unreadable_or_invalid_ca_certs_is_a_config_error(tmp_path):
    missing = tmp_path / "missing.pem"
    proc = run_cli(["--search-host", "https://127.0.0.1:9", "--ca-certs", str(missing), "info"], base_env())
    assert proc.returncode == 1
    assert "cannot read ca_certs" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    proc = run_cli(["--search-host", "https://127.0.0.1:9", "--ca-certs", str(garbage), "info"], base_env())
    assert proc.returncode == 1
    assert "ca_certs" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_the_python_tables_of_aggregators_agree_with_the_core():
    """One closed set: the core's Aggregator enum; Python keeps one tuple (for --help without
    the extension), checked here."""
    from invenio_community_stats import _core
    from invenio_community_stats.aggregation import AGGREGATION_TYPES, READ_TYPES

    assert list(AGGREGATION_TYPES) == [name for name, _ in _core.aggregators()]
    assert list(READ_TYPES) == [kind for _, kind in _core.aggregators()]


def test_version_comes_from_cargo():
    import re
    from pathlib import Path

    import invenio_community_stats
    from invenio_community_stats import _core

    cargo = Path(__file__).resolve().parent.parent / "Cargo.toml"
    declared = re.search(r'^version = "([^"]+)"', cargo.read_text(), re.M).group(1)
    assert invenio_community_stats.__version__ == _core.version() == declared


@pytest.mark.parametrize(
    "args, env, code, text",
    [
        (["aggregate", "--community-id", ""], {}, 2, "--community-id must not be empty"),
        (["generate-community-events", "--record-ids", ","], {}, 2, "--record-ids must not be empty"),
        (["migrate-events", "--max-memory-percent", "nan"], {}, 2, "not a finite number"),
        (["cancel-process", "x", "--timeout", "inf"], {}, 2, "not a finite number"),
        (["process-status", "x", "--pid-dir", ""], {}, 2, "--pid-dir must not be empty"),
        (["info"], {"INVENIO_SEARCH_HOSTS": "[]"}, 1, "SEARCH_HOSTS is an empty list"),
        (
            ["aggregate"],
            {"INVENIO_COMMUNITY_STATS_AGGREGATION_LOCK_TTL": "0"},
            1,
            "COMMUNITY_STATS_AGGREGATION_LOCK_TTL must be a whole number from 10 to 86400 (got 0)",
        ),
        (
            ["aggregate"],
            {"INVENIO_COMMUNITY_STATS_CATCHUP_DAYS": "-1"},
            1,
            "COMMUNITY_STATS_CATCHUP_DAYS must be a whole number from 1 to 36500 (got -1)",
        ),
        (
            ["migrate-events"],
            {"INVENIO_COMMUNITY_STATS_MIGRATION_SLICES": "'two'"},
            1,
            "COMMUNITY_STATS_MIGRATION_SLICES must be a whole number from 1 to 16",
        ),
    ],
)
def test_careless_input_gets_one_line_naming_the_option_or_key(args, env, code, text):
    """Before any connection: one line naming the option or setting and what it accepts."""
    hosts = [] if "INVENIO_SEARCH_HOSTS" in env else ["--search-host", "http://127.0.0.1:9"]
    proc = run_cli([*hosts, *args], base_env(**env))
    assert proc.returncode == code, proc.stderr
    assert text in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "Traceback" not in proc.stderr


def test_names_and_directories_that_are_not_utf8_get_one_line(tmp_path):
    """Bytes a terminal passes that are not UTF-8: one line, no traceback."""
    bad = os.fsdecode(b"job-\xff")
    bad_dir = os.fsdecode(bytes(tmp_path) + b"/run-\xfe")
    for args in (
        ["process-status", bad],
        ["process-status", "x", "--pid-dir", bad_dir],
        ["cancel-process", "x", "--pid-dir", bad_dir],
        ["processes", "clean", "--pid-dir", bad_dir],
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "invenio_community_stats", *args],
            env=base_env(),
            capture_output=True,
            text=True,
            errors="replace",
            timeout=60,
        )
        assert proc.returncode == 2, (args, proc.stderr)
        assert "not valid UTF-8" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_the_type_stubs_declare_every_function_of_the_core():
    """``_core.pyi`` and the extension agree: no function undeclared, none declared that is gone."""
    import re
    from pathlib import Path

    from invenio_community_stats import _core

    stub = Path(_core.__file__).with_name("_core.pyi").read_text()
    declared = set(re.findall(r"^def (\w+)\(", stub, re.M))
    functions = {
        n
        for n in dir(_core)
        if not n.startswith("_") and type(getattr(_core, n)).__name__ == "builtin_function_or_method"
    }
    assert functions == declared
