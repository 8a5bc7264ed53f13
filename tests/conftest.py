"""Shared fixtures. Integration tests run against ONE real OpenSearch node: the one named by
``COMMUNITY_STATS_TEST_SEARCH_HOSTS`` or, if unset, a node this session starts itself with
``scripts/opensearch`` (and stops at the end). Each test gets its own index prefix."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
OPENSEARCH_SCRIPT = REPO / "scripts" / "opensearch"
TEST_PORT = int(os.environ.get("COMMUNITY_STATS_TEST_PORT", "9250"))


def _http_json(method, url, body=None, timeout=30):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            text = resp.read().decode()
            return resp.status, (json.loads(text) if text.strip() else None)
    except urllib.error.HTTPError as err:
        text = err.read().decode()
        try:
            return err.code, json.loads(text)
        except ValueError:
            return err.code, text


@pytest.fixture(scope="session")
def search_url():
    """Base URL of the real OpenSearch node used by the tests."""
    env = os.environ.get("COMMUNITY_STATS_TEST_SEARCH_HOSTS")
    if env:
        url = env.split(",")[0].strip()
        if "://" not in url:
            url = "http://" + url
        yield url.rstrip("/")
        return
    data_dir = Path(tempfile.mkdtemp(prefix="community-stats-test-os-"))
    cmd = [str(OPENSEARCH_SCRIPT), "--port", str(TEST_PORT), "--data-dir", str(data_dir)]
    subprocess.run([*cmd[:1], "start", *cmd[1:]], check=True)
    try:
        yield f"http://127.0.0.1:{TEST_PORT}"
    finally:
        subprocess.run([*cmd[:1], "stop", *cmd[1:]], check=False)
        shutil.rmtree(data_dir, ignore_errors=True)


class Search:
    """A tiny independent HTTP helper for assertions (not the code under test)."""

    def __init__(self, url):
        self.url = url

    def request(self, method, path, body=None):
        return _http_json(method, f"{self.url}/{path.lstrip('/')}", body)

    def ok(self, method, path, body=None):
        status, reply = self.request(method, path, body)
        assert 200 <= status < 300, (status, reply)
        return reply

    def bulk(self, ndjson):
        """POST an NDJSON ``_bulk`` body; returns the reply."""
        req = urllib.request.Request(
            f"{self.url}/_bulk", data=ndjson, method="POST", headers={"Content-Type": "application/x-ndjson"}
        )
        with urllib.request.urlopen(req, timeout=120) as resp:
            return json.loads(resp.read().decode())

    def count(self, index, query=None):
        self.request("POST", f"{index}/_refresh?ignore_unavailable=true&allow_no_indices=true")
        body = {"query": query} if query else None
        status, reply = self.request("POST", f"{index}/_count?ignore_unavailable=true&allow_no_indices=true", body)
        assert status == 200, reply
        return reply["count"]

    def count_if_ready(self, index):
        """The documents of ``index``, or 0 while it does not exist or its shards are still
        starting (a job that is creating it); for polling."""
        status, reply = self.request("POST", f"{index}/_count?ignore_unavailable=true&allow_no_indices=true")
        return reply["count"] if status == 200 else 0

    def search_all(self, index, query=None, size=10000):
        self.request("POST", f"{index}/_refresh?ignore_unavailable=true&allow_no_indices=true")
        body = {"size": size, "query": query or {"match_all": {}}, "sort": ["_doc"], "track_total_hits": True}
        status, reply = self.request("POST", f"{index}/_search?ignore_unavailable=true&allow_no_indices=true", body)
        assert status == 200, reply
        hits = reply["hits"]["hits"]
        assert len(hits) == reply["hits"]["total"]["value"], f"{index}: more than {size} hits, use scan()"
        return hits

    def first(self, index):
        """One document's ``_source`` of ``index``."""
        self.request("POST", f"{index}/_refresh?ignore_unavailable=true&allow_no_indices=true")
        status, reply = self.request("POST", f"{index}/_search", {"size": 1})
        assert status == 200 and reply["hits"]["hits"], reply
        return reply["hits"]["hits"][0]["_source"]

    def scan(self, index, query=None):
        """Every hit of ``index`` (any number), read with a scroll."""
        self.request("POST", f"{index}/_refresh?ignore_unavailable=true&allow_no_indices=true")
        body = {"size": 5000, "query": query or {"match_all": {}}, "sort": ["_doc"]}
        path = f"{index}/_search?scroll=2m&ignore_unavailable=true&allow_no_indices=true"
        status, reply = self.request("POST", path, body)
        hits = []
        try:
            while True:
                assert status == 200, reply
                page = reply["hits"]["hits"]
                if not page:
                    return hits
                hits.extend(page)
                status, reply = self.request(
                    "POST", "_search/scroll", {"scroll": "2m", "scroll_id": reply["_scroll_id"]}
                )
        finally:
            if isinstance(reply, dict) and "_scroll_id" in reply:
                self.request("DELETE", "_search/scroll", {"scroll_id": reply["_scroll_id"]})

    def indices(self, pattern):
        status, reply = self.request("GET", f"_cat/indices/{pattern}?format=json&h=index,docs.count")
        if status != 200:
            return []
        return sorted(row["index"] for row in reply)


@pytest.fixture(scope="session")
def search(search_url):
    """Assertion helper bound to the test node."""
    return Search(search_url)


@pytest.fixture
def index_prefix(search):
    """A prefix of the test's own; its indices and templates are removed afterwards."""
    prefix = f"t{uuid.uuid4().hex[:10]}-"
    yield prefix
    search.request("DELETE", f"{prefix}*?expand_wildcards=all")
    status, reply = search.request("GET", f"_index_template/{prefix}*")
    if status == 200:
        for tpl in reply.get("index_templates", []):
            search.request("DELETE", f"_index_template/{tpl['name']}")


@pytest.fixture
def cli_env(search_url, index_prefix, tmp_path):
    """Environment for running the standalone CLI against the test node and prefix."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INVENIO_")}
    env.update(
        {
            "INVENIO_SEARCH_HOSTS": repr([search_url]),
            "INVENIO_SEARCH_INDEX_PREFIX": index_prefix,
            "COMMUNITY_STATS_APP_MODE": "standalone",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def run_cli(args, env, timeout=300, check=False):
    """Runs ``python -m invenio_community_stats ARGS`` and returns the CompletedProcess."""
    proc = subprocess.run(
        [sys.executable, "-m", "invenio_community_stats", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


@pytest.fixture
def cli(cli_env):
    """``cli(*args)`` runs the CLI with the test's environment."""

    def _run(*args, timeout=300, check=False, env=None):
        return run_cli(list(args), env or cli_env, timeout=timeout, check=check)

    return _run


def wait_for(predicate, timeout=30.0, interval=0.05):
    """Polls ``predicate`` until it is truthy or ``timeout`` passes; returns its last value."""
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = predicate()
    return value
