"""The sample loader and ``info`` against the real OpenSearch node."""

import json
import signal
import subprocess
import sys
import time
from datetime import datetime

from conftest import wait_for


def test_sample_loads_invenio_shaped_data_and_info_reports_it(cli, search, index_prefix):
    proc = cli("load-sample-data", "--records", "60", "--communities", "3", "--events-per-record", "5",
               "--months", "3", "--end-date", "2025-06-30", "--json", check=True)
    report = json.loads(proc.stdout)
    assert report["index_prefix"] == index_prefix
    assert search.count(f"{index_prefix}rdmrecords-records") == 60 == report["records"]
    assert search.count(f"{index_prefix}communities") == 3
    views = search.count(f"{index_prefix}events-stats-record-view-*")
    downloads = search.count(f"{index_prefix}events-stats-file-download-*")
    assert views == report["view_events"] > 0
    assert downloads == report["download_events"] > 0
    months = {i.rsplit("-", 2)[-2] + "-" + i.rsplit("-", 1)[-1] for i in search.indices(f"{index_prefix}events-stats-*")}
    assert months <= {"2025-04", "2025-05", "2025-06"}

    # Events are in the month of their index, never after the end date; downloads carry files.
    for hit in search.search_all(f"{index_prefix}events-stats-file-download-*"):
        doc = hit["_source"]
        assert hit["_index"].endswith(doc["timestamp"][:7])
        assert doc["timestamp"] <= "2025-06-30T23:59:59"
        assert doc["unique_id"] == f"{doc['bucket_id']}_{doc['file_id']}"
        assert doc["size"] > 0
    # Records point at communities that exist.
    community_ids = {h["_id"] for h in search.search_all(f"{index_prefix}communities")}
    for hit in search.search_all(f"{index_prefix}rdmrecords-records"):
        assert set(hit["_source"]["parent"]["communities"]["ids"]) <= community_ids

    info = json.loads(cli("info", "--json", check=True).stdout)
    assert info["index_prefix"] == index_prefix
    assert info["version"].startswith("2.19.")
    assert info["indices"]["records"]["documents"] == 60
    assert info["indices"]["view events"]["documents"] == views
    assert info["indices"]["download events"]["documents"] == downloads

    human = cli("info", check=True).stdout
    assert index_prefix in human and "view events" in human


def test_sample_is_deterministic_for_a_seed(cli, search, index_prefix):
    args = ["--records", "20", "--communities", "2", "--events-per-record", "3", "--end-date", "2025-01-31", "--seed", "7"]
    cli("load-sample-data", *args, check=True)
    first = {h["_id"]: h["_source"] for h in search.search_all(f"{index_prefix}rdmrecords-records")}
    other = index_prefix + "b-"
    try:
        cli("--index-prefix", other, "load-sample-data", *args, check=True)
        second = {h["_id"]: h["_source"] for h in search.search_all(f"{other}rdmrecords-records")}
        assert first == second
        ev1 = sorted(h["_id"] for h in search.search_all(f"{index_prefix}events-stats-*"))
        ev2 = sorted(h["_id"] for h in search.search_all(f"{other}events-stats-*"))
        assert ev1 == ev2 and ev1
    finally:
        search.request("DELETE", f"{other}*")


def test_sample_refuses_a_prefix_with_records(cli, search, index_prefix):
    cli("load-sample-data", "--records", "5", "--events-per-record", "1", check=True)
    before = search.count(f"{index_prefix}*")
    proc = cli("load-sample-data", "--records", "5")
    assert proc.returncode == 1
    assert "already exists" in proc.stderr
    assert search.count(f"{index_prefix}*") == before


def test_bad_end_date_changes_nothing(cli, search, index_prefix):
    proc = cli("load-sample-data", "--end-date", "2025-13-01")
    assert proc.returncode == 2
    assert "YYYY-MM-DD" in proc.stderr
    assert search.indices(f"{index_prefix}*") == []


def test_ctrl_c_stops_a_foreground_run_cleanly(cli_env, search, index_prefix):
    proc = subprocess.Popen(
        [sys.executable, "-m", "invenio_community_stats", "load-sample-data", "--records", "200000",
         "--events-per-record", "10"],
        env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    # Wait until it is really writing, then interrupt it like a terminal would.
    assert wait_for(lambda: search.count(f"{index_prefix}rdmrecords-records") > 0, timeout=60)
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert time.monotonic() - started < 10
    assert proc.returncode == 130, err
    assert "Interrupted" in err
    assert "Traceback" not in err
