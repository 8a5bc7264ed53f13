"""The sample loader and ``info`` against the real OpenSearch node."""

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timezone

from conftest import wait_for


def test_sample_loads_invenio_shaped_data_and_info_reports_it(cli, search, index_prefix):
    proc = cli(
        "load-sample-data",
        "--records",
        "60",
        "--communities",
        "3",
        "--events-per-record",
        "5",
        "--months",
        "3",
        "--end-date",
        "2025-06-30",
        "--json",
        check=True,
    )
    report = json.loads(proc.stdout)
    assert report["index_prefix"] == index_prefix
    assert search.count(f"{index_prefix}rdmrecords-records") == 60 == report["records"]
    assert search.count(f"{index_prefix}communities") == 3
    views = search.count(f"{index_prefix}events-stats-record-view-*")
    downloads = search.count(f"{index_prefix}events-stats-file-download-*")
    assert views == report["view_events"] > 0
    assert downloads == report["download_events"] > 0
    months = {
        i.rsplit("-", 2)[-2] + "-" + i.rsplit("-", 1)[-1] for i in search.indices(f"{index_prefix}events-stats-*")
    }
    assert months <= {"2025-04", "2025-05", "2025-06"}

    # Events are in the month of their index, never after the end date; downloads carry files.
    for hit in search.search_all(f"{index_prefix}events-stats-file-download-*"):
        doc = hit["_source"]
        assert hit["_index"].endswith(doc["timestamp"][:7])
        assert doc["timestamp"] <= "2025-06-30T23:59:59"
        assert doc["unique_id"] == f"{doc['bucket_id']}_{doc['file_id']}"
        assert doc["size"] > 0
    # Records point at communities that exist (or at none: `parent.communities` is {}).
    community_ids = {h["_id"] for h in search.search_all(f"{index_prefix}communities")}
    records = [h["_source"] for h in search.search_all(f"{index_prefix}rdmrecords-records")]
    for r in records:
        assert set(r["parent"]["communities"].get("ids", [])) <= community_ids

    info = json.loads(cli("info", "--json", check=True).stdout)
    assert info["index_prefix"] == index_prefix
    assert info["version"] == search.ok("GET", "/")["version"]["number"]
    assert info["indices"]["records"]["documents"] == 60
    assert info["indices"]["view events"]["documents"] == views
    assert info["indices"]["download events"]["documents"] == downloads

    human = cli("info", check=True).stdout
    assert index_prefix in human and "view events" in human


def test_sample_has_the_shapes_of_a_real_instance(cli, search, index_prefix):
    """Under InvenioRDM's own strict mappings (which refuse any invented field), in the shapes
    a real instance's indices hold (the project's notes on real instance shapes)."""
    report = json.loads(
        cli(
            "load-sample-data",
            "--records",
            "300",
            "--communities",
            "4",
            "--events-per-record",
            "6",
            "--months",
            "2",
            "--end-date",
            "2025-06-30",
            "--json",
            check=True,
        ).stdout
    )
    p = index_prefix
    # Indices named and aliased as invenio-search does, from the packages' mappings.
    aliases = search.ok("GET", f"{p}rdmrecords-records/_alias")
    (records_index,) = aliases
    assert records_index.startswith(f"{p}rdmrecords-records-record-v7.0.0-")
    assert set(aliases[records_index]["aliases"]) == {
        f"{p}rdmrecords",
        f"{p}rdmrecords-records",
        f"{p}rdmrecords-records-record-v7.0.0",
    }
    mapping = search.ok("GET", f"{p}rdmrecords-records/_mapping")[records_index]["mappings"]
    assert mapping["dynamic"] == "strict"
    assert (
        mapping["properties"]["metadata"]["properties"]["locations"]["properties"]["features"]["properties"][
            "geometry"
        ]["type"]
        == "geo_shape"
    )
    flag = search.ok("GET", f"{p}communities/_mapping")
    assert next(iter(flag.values()))["mappings"]["properties"]["custom_fields"]["properties"][
        "stats:dashboard_enabled"
    ] == {"type": "boolean"}
    assert (
        search.ok("GET", f"_template/{p}record-view-v1.0.0")[f"{p}record-view-v1.0.0"]["mappings"]["properties"][
            "timestamp"
        ]["format"]
        == "strict_date_optional_time"
    )

    records = [h["_source"] for h in search.search_all(f"{p}rdmrecords-records")]
    assert len(records) == 300 == report["records"]
    text = json.dumps(records)
    assert "bucket_id" not in text
    hidden = [r for r in records if r["access"]["status"] in ("restricted", "embargoed")]
    assert hidden and all(r["files"] == {"enabled": True} for r in hidden)
    assert len(hidden) == report["records_with_hidden_files"]
    open_files = [r for r in records if r["access"]["status"] == "open"]
    assert open_files and all(r["files"]["count"] == len(r["files"]["entries"]) > 0 for r in open_files)
    assert all(r["files"]["totalbytes"] == sum(e["size"] for e in r["files"]["entries"]) for r in open_files)
    assert all(r["files"] == {"enabled": False} for r in records if r["access"]["status"] == "metadata-only")
    parents = Counter(r["parent"]["id"] for r in records)
    assert max(parents.values()) >= 2 and report["new_versions"] == sum(n - 1 for n in parents.values())
    for parent, n in parents.items():
        versions = sorted((r for r in records if r["parent"]["id"] == parent), key=lambda r: r["versions"]["index"])
        assert [v["versions"]["index"] for v in versions] == list(range(1, n + 1))
        assert [v["versions"]["is_latest"] for v in versions] == [False] * (n - 1) + [True]
        assert len({json.dumps(v["parent"]["communities"], sort_keys=True) for v in versions}) == 1
    assert any(r["parent"]["communities"] == {} for r in records)
    assert any(r["custom_fields"] == {} for r in records) and any(
        "journal:journal" in r["custom_fields"] for r in records
    )
    md = [r["metadata"] for r in records]
    assert any("id" not in x for m in md for x in m["rights"])
    assert any("id" not in x for m in md for x in m["subjects"])
    assert any("id" not in f["funder"] for m in md for f in m["funding"])
    assert any("id" not in a for m in md for c in m["creators"] for a in c["affiliations"])
    assert all(len(m["resource_type"]["title"]) > 1 and "props" in m["resource_type"] for m in md)
    assert any(r["is_deleted"] and r["tombstone"]["removal_date"] for r in records)
    communities = [h["_source"] for h in search.search_all(f"{p}communities")]
    assert {json.dumps(c["custom_fields"]) for c in communities} == {"{}", '{"stats:dashboard_enabled": true}'}

    events = [h["_source"] for h in search.search_all(f"{p}events-stats-*")]
    assert any(e["referrer"] is None for e in events) and any(e["country"] is None for e in events)
    assert any(e["unique_id"].startswith("api_") and e["via_api"] for e in events)
    assert all(e["updated_timestamp"].endswith("+00:00") and "." in e["updated_timestamp"] for e in events)
    # Downloads also of files the index does not list (restricted files are downloaded too).
    hidden_ids = {r["id"] for r in hidden}
    assert any(e["recid"] in hidden_ids for e in events if "file_id" in e)


def test_a_sample_ending_today_writes_no_event_in_the_future(cli, search, index_prefix):
    today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    cli(
        "load-sample-data",
        "--records",
        "40",
        "--events-per-record",
        "20",
        "--months",
        "1",
        "--end-date",
        today,
        check=True,
    )
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    latest = max(h["_source"]["timestamp"] for h in search.search_all(f"{index_prefix}events-stats-*"))
    assert latest <= now
    created = max(h["_source"]["created"][:19] for h in search.search_all(f"{index_prefix}rdmrecords-records"))
    assert created <= now


def test_sample_is_deterministic_for_a_seed(cli, search, index_prefix):
    args = [
        "--records",
        "20",
        "--communities",
        "2",
        "--events-per-record",
        "3",
        "--end-date",
        "2025-01-31",
        "--seed",
        "7",
    ]
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
        [
            sys.executable,
            "-m",
            "invenio_community_stats",
            "load-sample-data",
            "--records",
            "200000",
            "--events-per-record",
            "10",
        ],
        env=cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Wait until it is really writing, then interrupt it like a terminal would.
    assert wait_for(lambda: search.count_if_ready(f"{index_prefix}rdmrecords-records") > 0, timeout=60)
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert time.monotonic() - started < 10
    assert proc.returncode == 130, err
    assert "Interrupted" in err
    assert "Traceback" not in err


LOAD = [
    "load-sample-data",
    "--records",
    "3000",
    "--events-per-record",
    "2",
    "--months",
    "2",
    "--end-date",
    "2025-06-30",
]


def test_at_a_terminal_progress_is_one_live_line_then_the_summary(cli_env, search, index_prefix):
    """In a pseudo-terminal: one line redrawn in place (carriage return, clear, bar, %,
    processed / total, rate, ETA, task), ended by a newline, then the summary; no progress
    log lines."""
    import fcntl
    import os
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "invenio_community_stats", *LOAD],
        env=cli_env,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        close_fds=True,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    assert proc.wait(timeout=300) == 0
    os.close(master)
    out = b"".join(chunks).decode("utf-8", "replace")
    draws = out.split("\r\x1b[2K")[1:]
    assert len(draws) >= 2, out[-2000:]
    assert all(d.startswith("load-sample-data [") for d in draws), draws[:3]
    last_draw, summary = draws[-1].split("\r\n", 1)
    assert " 100.0%  3000/3000  " in last_draw and "/s  ETA " in last_draw, last_draw
    assert "Loaded 5 communities, 3000 records" in summary, summary
    assert "INFO load-sample-data:" not in out
    assert search.count(f"{index_prefix}rdmrecords-records") == 3000


def test_piped_progress_stays_log_lines(cli, search, index_prefix):
    proc = cli(*LOAD)
    assert proc.returncode == 0, proc.stderr
    assert "INFO load-sample-data: 3000/3000 (100.0%)" in proc.stderr
    assert "\r" not in proc.stderr and "\x1b[" not in proc.stderr
