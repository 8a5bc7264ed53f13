"""An OpenSearch restart in the middle of a migration: the job waits, retries, reopens its
point in time and finishes; nothing is lost or duplicated. Uses a node of its own (the
shared test node is not restarted)."""

import json
import os
import subprocess
import sys
import time
import urllib.request

from conftest import OPENSEARCH_SCRIPT, wait_for

# HTTP port of this test's own node (its transport port is PORT + 100). Not 9350: that is
# the transport port of the session node scripts/test starts on 9250.
PORT = int(os.environ.get("COMMUNITY_STATS_RESTART_TEST_PORT", "9450"))


def _ids(url, pattern):
    urllib.request.urlopen(urllib.request.Request(f"{url}/{pattern}/_refresh", method="POST")).read()
    body = json.dumps({"size": 10000, "_source": False, "query": {"match_all": {}}}).encode()
    req = urllib.request.Request(
        f"{url}/{pattern}/_search", data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req) as r:
        return sorted(h["_id"] for h in json.loads(r.read())["hits"]["hits"])


def test_migration_survives_an_opensearch_restart(tmp_path):
    data = tmp_path / "os"
    node = [str(OPENSEARCH_SCRIPT), "--port", str(PORT), "--data-dir", str(data)]
    subprocess.run([node[0], "start", *node[1:]], check=True, capture_output=True)
    url = f"http://127.0.0.1:{PORT}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("INVENIO_")}
    env.update(
        COMMUNITY_STATS_APP_MODE="standalone",
        INVENIO_SEARCH_HOSTS=repr([url]),
        INVENIO_SEARCH_INDEX_PREFIX="rs-",
        INVENIO_COMMUNITY_STATS_JOB_RETRY_SECONDS="180",
    )

    def run(*a):
        return subprocess.run(
            [sys.executable, "-m", "invenio_community_stats", *a], env=env, capture_output=True, text=True, timeout=300
        )

    try:
        assert (
            run(
                "load-sample-data",
                "--records",
                "150",
                "--events-per-record",
                "12",
                "--months",
                "2",
                "--end-date",
                "2025-03-31",
            ).returncode
            == 0
        )
        expected = _ids(url, "rs-events-stats-record-view-2025-0*,rs-events-stats-file-download-2025-0*")
        job = subprocess.Popen(
            [sys.executable, "-m", "invenio_community_stats", "migrate-events", "--batch-size", "25", "--json"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        # Restart the node once the job is copying.
        assert wait_for(
            lambda: run("migration-status", "--json").stdout.count('"copying"') > 0, timeout=60, interval=0.1
        )
        subprocess.run([node[0], "stop", *node[1:]], check=True, capture_output=True)
        time.sleep(2)
        subprocess.run([node[0], "start", *node[1:]], check=True, capture_output=True)
        out, err = job.communicate(timeout=300)
        assert job.returncode == 0, err
        report = json.loads(out)
        assert report["done"] == 4 and report["failed"] == 0, report
        assert "retrying" in err  # it did wait for the node
        assert _ids(url, "rs-events-stats-*-v2.0.0") == expected
    finally:
        subprocess.run([node[0], "stop", *node[1:]], capture_output=True)
