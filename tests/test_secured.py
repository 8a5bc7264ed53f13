"""Over HTTPS with credentials, as production runs: the jobs through a TLS + basic-auth
front (nginx, certificates of a CA made here), at ``/`` and under ``/os/``; what goes
wrong there (certificates, a plain port, a proxy's error page or body limit) fails at once
with one line, or is worked around (a 413 splits the request)."""

import json
import time

import pytest

from conftest import run_cli, wait_for
from helpers import js
from secured import PASSWORD, USER, SecuredEndpoint

FINAL = ("completed", "failed", "cancelled", "killed", "lost")
SAMPLE = ["--records", "30", "--events-per-record", "4", "--months", "2", "--end-date", "2025-06-30"]


@pytest.fixture(scope="module")
def endpoint(search_url, tmp_path_factory):
    ep = SecuredEndpoint(tmp_path_factory.mktemp("nginx"), search_url.split("://", 1)[1].rstrip("/"))
    yield ep
    ep.stop()


def env_for(cli_env, hosts, client_config=None, **extra):
    env = dict(cli_env, INVENIO_SEARCH_HOSTS=repr(hosts), **extra)
    if client_config is not None:
        env["INVENIO_SEARCH_CLIENT_CONFIG"] = repr(client_config)
    return env


def no_secret(*procs):
    for proc in procs:
        for text in (proc.stdout, proc.stderr):
            assert PASSWORD not in text and "p%23ss" not in text, text


def test_the_jobs_run_over_https_with_basic_auth(endpoint, cli_env, search, index_prefix, tmp_path):
    # Credentials in the URL (the password URL-encoded), the CA in SEARCH_CLIENT_CONFIG.
    in_url = env_for(cli_env, [endpoint.url()], {"ca_certs": endpoint.ca_pem})
    info = run_cli(["info", "--json"], in_url)
    assert json.loads(info.stdout)["index_prefix"] == index_prefix, info.stderr
    loaded = run_cli(["load-sample-data", *SAMPLE], in_url)
    assert loaded.returncode == 0, loaded.stderr
    # Behind a path prefix, credentials in SEARCH_CLIENT_CONFIG's http_auth.
    in_config = env_for(
        cli_env,
        [endpoint.url("os", credentials=False)],
        {"ca_certs": endpoint.ca_pem, "http_auth": (USER, PASSWORD)},
    )
    migrated = js(run_cli(["migrate-events", "--json"], in_config))
    assert migrated["failed"] == 0 and migrated["done"] == 4
    run_cli(["generate-community-events"], in_config)
    report = js(
        run_cli(
            ["aggregate", "-c", "global", "--start-date", "2025-06-01", "--end-date", "2025-06-30", "--json"], in_config
        )
    )
    assert report["errors"] == 0 and report["documents"] == 4 * 30
    # A background job gets the same settings (never on its command line).
    pid_dir = str(tmp_path / "pids")
    started = run_cli(
        ["aggregate-background", "-c", "global", "--end-date", "2025-06-30", "--pid-dir", pid_dir], in_url
    )
    assert started.returncode == 0, started.stderr
    status = wait_for(
        lambda: (
            (
                s := json.loads(
                    run_cli(["process-status", "aggregation", "--json", "--pid-dir", pid_dir], in_url).stdout
                )
            )["state"]
            in FINAL
            and s
        ),
        timeout=120,
    )
    assert status["state"] == "completed", status
    assert PASSWORD not in status["command"] and "p%23ss" not in status["command"]
    no_secret(info, loaded, started)
    assert search.count(f"{index_prefix}stats-community-usage-delta-*") > 0


def _cases(endpoint, search_url):
    return {
        "unknown CA": ([endpoint.url()], {}, "not signed by a CA this client trusts"),
        "expired certificate": (
            [endpoint.url(credentials=False, port=endpoint.expired_port)],
            {"ca_certs": endpoint.ca_pem},
            "certificate has expired",
        ),
        "certificate for another host name": (
            [endpoint.url(credentials=False, port=endpoint.wrong_name_port)],
            {"ca_certs": endpoint.ca_pem},
            "not valid for this host name",
        ),
        "TLS to a plain HTTP port": (
            [search_url.replace("http://", "https://")],
            {"ca_certs": endpoint.ca_pem},
            "does not speak TLS on this port",
        ),
    }


@pytest.mark.parametrize(
    "case", ["unknown CA", "expired certificate", "certificate for another host name", "TLS to a plain HTTP port"]
)
def test_a_tls_error_no_retry_can_fix_fails_at_once_with_one_line(endpoint, search_url, cli_env, tmp_path, case):
    hosts, client_config, cause = _cases(endpoint, search_url)[case]
    env = env_for(cli_env, hosts, client_config)
    started = time.monotonic()
    # A job (it retries an unreachable cluster for COMMUNITY_STATS_JOB_RETRY_SECONDS, 600 s).
    proc = run_cli(["aggregate", "-c", "global", "--end-date", "2025-06-30"], env, timeout=120)
    assert time.monotonic() - started < 15, "retried"
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and cause in lines[0], proc.stderr
    no_secret(proc)
    # In the background: failed with the cause, not `running / Starting...`.
    pid_dir = str(tmp_path / "pids")
    assert run_cli(["aggregate-background", "--pid-dir", pid_dir], env).returncode == 0
    status = wait_for(
        lambda: (
            (s := json.loads(run_cli(["process-status", "aggregation", "--json", "--pid-dir", pid_dir], env).stdout))[
                "state"
            ]
            in FINAL
            and s
        ),
        timeout=30,
    )
    assert status["state"] == "failed" and cause in status["error"], status


def test_unverified_certificates_work_with_one_warning(endpoint, cli_env):
    env = env_for(cli_env, [endpoint.url()], {"verify_certs": False})
    proc = run_cli(["info", "--json"], env)
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if "not verified" in line]
    assert len(warnings) == 1 and "WARNING" in warnings[0], proc.stderr
    # Plain HTTP has no certificates to verify: no warning.
    plain = run_cli(["info"], dict(cli_env, INVENIO_SEARCH_CLIENT_CONFIG=repr({"verify_certs": False})))
    assert plain.returncode == 0 and "not verified" not in plain.stderr


def test_a_proxy_error_page_is_one_line_without_its_html(endpoint, cli_env):
    env = env_for(cli_env, [endpoint.url("down")], {"ca_certs": endpoint.ca_pem})
    proc = run_cli(["info"], env)
    assert proc.returncode == 1
    (line,) = [line for line in proc.stderr.splitlines() if line.strip()]
    assert "502 Bad Gateway (an HTML page: a proxy answered, not OpenSearch)" in line, line
    assert "<" not in line
    # Plain HTTP to the TLS port: nginx's 400, named, whatever the request's method.
    plain = env_for(cli_env, [f"http://{USER}:x@127.0.0.1:{endpoint.port}"])
    proc = run_cli(["status"], plain)
    (line,) = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 1 and "HTTP 400" in line and "<" not in line, line
    assert "plain HTTP request was sent to HTTPS port" in line or "(an empty reply)" in line, line


def test_a_proxy_body_limit_splits_the_requests_and_loses_nothing(endpoint, cli_env, search, index_prefix):
    """Behind a proxy with a 1 MB body limit (HTTP 413 for larger requests): generation and
    aggregation split their bulk requests and write everything."""
    env = env_for(cli_env, [endpoint.url("small")], {"ca_certs": endpoint.ca_pem})
    assert run_cli(["load-sample-data", *SAMPLE, "--events-per-record", "0"], env).returncode == 0
    proc = run_cli(
        ["generate-usage-events", "--events-per-record", "60", "--event-end-date", "2025-06-30", "--json"], env
    )
    report = js(proc)
    assert "too large for the server or a proxy (HTTP 413)" in proc.stderr
    assert report["failed"] == 0 and report["written"] == report["view_events"] + report["download_events"]
    indices = ",".join(report["indices"])
    assert search.count(indices) == report["written"]
