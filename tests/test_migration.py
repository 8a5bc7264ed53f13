"""Usage-event migration against the real node: enrichment, verification, the atomic alias
switch, checkpoints and resume (also after kill -9), bad input."""

import json
import random
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone

import pytest

from conftest import wait_for
from helpers import ids, js
from records_fixture import reindex_under_reference_mapping


def legacy(prefix, kind, months=(4, 5, 6)):
    """The legacy monthly indices of the sample (comma-separated, for a URL)."""
    kinds = ["record-view", "file-download"] if kind == "*" else [kind]
    return ",".join(f"{prefix}events-stats-{k}-2025-0{m}" for k in kinds for m in months)


def alias_indices(search, alias):
    status, reply = search.request("GET", f"_alias/{alias}")
    return sorted(reply) if status == 200 else []


@pytest.fixture
def sample(cli, search, index_prefix):
    """Closed months only: a sample that ends two months ago."""
    cli(
        "load-sample-data",
        "--records",
        "120",
        "--events-per-record",
        "12",
        "--months",
        "3",
        "--end-date",
        "2025-06-30",
        check=True,
    )
    cli("generate-community-events", check=True)
    return index_prefix


def test_migration_enriches_verifies_and_switches_atomically(cli, search, sample):
    p = sample
    view_ids = ids(search, legacy(p, "record-view"))
    dl_ids = ids(search, legacy(p, "file-download"))
    report = js(cli("migrate-events", "--batch-size", "100", "--json"))
    assert report["done"] == 6 and report["failed"] == 0 and report["interrupted"] == 0
    assert ids(search, f"{p}events-stats-record-view-*-v2.0.0") == view_ids
    assert ids(search, f"{p}events-stats-file-download-*-v2.0.0") == dl_ids
    # The read alias now names exactly the migrated indices: no event counted twice.
    assert alias_indices(search, f"{p}events-stats-record-view") == [
        f"{p}events-stats-record-view-2025-0{m}-v2.0.0" for m in (4, 5, 6)
    ]
    assert search.count(f"{p}events-stats-record-view") == len(view_ids)
    # Enrichment: the sample's community events date from record creation, before any usage,
    # so each event's communities are its record's communities.
    records = {h["_id"]: h["_source"] for h in search.search_all(f"{p}rdmrecords-records")}
    for hit in search.search_all(f"{p}events-stats-file-download-*-v2.0.0"):
        d = hit["_source"]
        r = records[d["recid"]]
        assert d["community_ids"] == sorted(set(r["parent"]["communities"].get("ids", [])))
        assert d["resource_type"]["id"] == r["metadata"]["resource_type"]["id"]
        assert d["access_status"] == r["access"]["status"]
        assert d.get("journal_title") == r["custom_fields"].get("journal:journal", {}).get("title")
        assert sorted(f["name"] for f in d.get("funders", [])) == sorted(
            f["funder"]["name"] for f in r["metadata"]["funding"]
        )
        # What RDM indexes for restricted files has no entries: `files.types` is read where
        # present, and a record with hidden files has no file types.
        assert d.get("file_types", []) == r["files"].get("types", [])
    # Our documents index under the reference's strict v2 template.
    errors, n = reindex_under_reference_mapping(
        search, f"{p}events-stats-file-download-*-v2.0.0", "file-download-v2.0.0", f"{p}ref-dl"
    )
    assert errors == [] and n == len(dl_ids)
    errors, n = reindex_under_reference_mapping(
        search, f"{p}events-stats-record-view-*-v2.0.0", "record-view-v2.0.0", f"{p}ref-view"
    )
    assert errors == [] and n == len(view_ids)
    status = js(cli("migration-status", "--json"))
    assert {(r["state"], r["read_alias"]) for r in status} == {("done", "target")}
    # Created with refresh off for the copy, each target is back at its refresh interval.
    settings = search.ok("GET", f"{p}events-stats-*-v2.0.0/_settings/index.refresh_interval")
    assert len(settings) == 6
    assert {s["settings"]["index"]["refresh_interval"] for s in settings.values()} == {"5s"}
    again = js(cli("migrate-events", "--json"))
    assert again["written"] == 0 and again["done"] == 6


def test_months_in_parallel_lanes_migrate_exactly_and_report_in_plan_order(cli, search, sample):
    """--parallel-months 3 (more lanes than slices): the same documents, enriched the same,
    as one month at a time, and the months reported in the order of the plan."""
    p = sample
    view_ids, dl_ids = ids(search, legacy(p, "record-view")), ids(search, legacy(p, "file-download"))
    report = js(cli("migrate-events", "--batch-size", "50", "--parallel-months", "3", "--json"))
    assert report["done"] == 6 and report["failed"] == 0 and report["interrupted"] == 0, report
    order = [(m["event_type"], m["month"]) for m in report["months"]]
    planned = js(cli("migrate-events", "--dry-run", "--json"))["months"]
    assert order == [(m["event_type"], m["month"]) for m in planned]
    assert ids(search, f"{p}events-stats-record-view-*-v2.0.0") == view_ids
    assert ids(search, f"{p}events-stats-file-download-*-v2.0.0") == dl_ids
    records = {h["_id"]: h["_source"] for h in search.search_all(f"{p}rdmrecords-records")}
    for hit in search.scan(f"{p}events-stats-*-v2.0.0"):
        d = hit["_source"]
        assert d["community_ids"] == sorted(set(records[d["recid"]]["parent"]["communities"].get("ids", [])))
    assert {(r["state"], r["read_alias"]) for r in js(cli("migration-status", "--json"))} == {("done", "target")}


def test_max_batches_checkpoints_and_resumes(cli, search, sample):
    p = sample
    first = js(
        cli("migrate-month", "2025-05", "--event-types", "view", "--batch-size", "50", "--max-batches", "2", "--json")
    )
    (month,) = first["months"]
    assert month["state"] == "interrupted" and month["batches"] == 2 and month["checkpoint"]
    assert 0 < month["target_count"] < month["source_count"]
    # Not switched: the read alias still names the legacy index only.
    assert f"{p}events-stats-record-view-2025-05" in alias_indices(search, f"{p}events-stats-record-view")
    assert f"{p}events-stats-record-view-2025-05-v2.0.0" not in alias_indices(search, f"{p}events-stats-record-view")
    rest = js(cli("migrate-month", "2025-05", "--event-types", "view", "--batch-size", "50", "--json"))
    assert rest["months"][0]["state"] == "done"
    assert ids(search, f"{p}events-stats-record-view-2025-05-v2.0.0") == ids(
        search, f"{p}events-stats-record-view-2025-05"
    )


def test_slices_checkpoint_each_and_a_resume_keeps_the_layout(cli, search, sample):
    p = sample
    source = f"{p}events-stats-record-view-2025-05"
    expected = ids(search, source)
    first = js(
        cli(
            "migrate-month",
            "2025-05",
            "--event-types",
            "view",
            "--batch-size",
            "20",
            "--slices",
            "3",
            "--max-batches",
            "6",
            "--json",
        )
    )
    assert first["months"][0]["state"] == "interrupted"
    state = search.ok("GET", f"{p}stats-community-migration/_doc/view-2025-05")["_source"]
    # Three slices, each with its own checkpoint; the display checkpoint is the earliest.
    assert len(state["slice_checkpoints"]) == 3
    assert [cp for cp in state["slice_checkpoints"] if cp], state
    assert state["checkpoint"] == min(cp for cp in state["slice_checkpoints"] if cp)
    copied = ids(search, f"{source}-v2.0.0")
    assert 0 < len(copied) < len(expected)
    # Each slice reads its own documents, in timestamp order: nothing before a slice's
    # checkpoint is missing from the copy. The slices are cut by _seq_no, so a new point in
    # time (as a resumed run opens) cuts them the same way.
    pit = search.ok("POST", f"{source}/_search/point_in_time?keep_alive=1m")["pit_id"]
    for slice_id, cp in enumerate(state["slice_checkpoints"]):
        body = {
            "query": {"range": {"timestamp": {"lt": cp}}} if cp else {"match_none": {}},
            "pit": {"id": pit},
            "slice": {"id": slice_id, "max": 3, "field": "_seq_no"},
            "size": 10000,
            "_source": False,
        }
        before = {h["_id"] for h in search.ok("POST", "_search", body)["hits"]["hits"]}
        assert before <= set(copied)
    search.request("DELETE", "_search/point_in_time", {"pit_id": [pit]})
    # A resume asking for one slice keeps the month's three (its checkpoints belong to them).
    rest = js(cli("migrate-month", "2025-05", "--event-types", "view", "--batch-size", "20", "--slices", "1", "--json"))
    assert rest["months"][0]["state"] == "done"
    assert ids(search, f"{source}-v2.0.0") == expected
    assert search.count(f"{source}-v2.0.0") == len(expected)
    assert len(search.ok("GET", f"{p}stats-community-migration/_doc/view-2025-05")["_source"]["slice_checkpoints"]) == 3


def test_kill_9_at_random_points_never_loses_or_duplicates(cli_env, cli, search, sample):
    p = sample
    expected = ids(search, legacy(p, "*"))
    rng = random.Random(11)
    for _ in range(5):
        proc = subprocess.Popen(
            [sys.executable, "-m", "invenio_community_stats", "migrate-events", "--batch-size", "40"],
            env=cli_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.8, 2.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    final = js(cli("migrate-events", "--batch-size", "40", "--json"))
    assert final["done"] == 6, final
    migrated = ids(search, f"{p}events-stats-*-v2.0.0")
    assert migrated == expected  # same id set: nothing lost, nothing duplicated
    assert search.count(f"{p}events-stats-*-v2.0.0") == len(expected)


def test_delete_old_indices_only_after_verification(cli, search, sample):
    p = sample
    report = js(cli("migrate-events", "--event-types", "download", "--delete-old-indices", "--json"))
    assert report["done"] == 3 and all(m["source_deleted"] for m in report["months"])
    # The old names are now write aliases of the new indices (no concrete index is left).
    for m in (4, 5, 6):
        name = f"{p}events-stats-file-download-2025-0{m}"
        assert search.ok("GET", f"_alias/{name}") == {f"{name}-v2.0.0": {"aliases": {name: {"is_write_index": True}}}}
    assert len(search.indices(legacy(p, "record-view"))) == 3  # views untouched
    status = js(cli("migration-status", "--event-types", "download", "--json"))
    assert [r["source_count"] for r in status] == [None, None, None]
    assert all(r["state"] == "done" and r["migrated"] > 0 for r in status)
    # A late write to an old name lands in the read alias, not in a stray new legacy index.
    before = search.count(f"{p}events-stats-file-download")
    doc = search.first(f"{p}events-stats-file-download-2025-05-v2.0.0")
    search.ok(
        "PUT", f"{p}events-stats-file-download-2025-05/_doc/late-write?refresh=true", dict(doc, visitor_id="late")
    )
    assert search.count(f"{p}events-stats-file-download") == before + 1
    assert "late-write" in ids(search, f"{p}events-stats-file-download-2025-05-v2.0.0")
    again = js(cli("migrate-events", "--event-types", "download", "--json"))
    assert again["done"] == 3 and again["written"] == 0


def test_writes_to_a_kept_old_index_after_its_switch_are_copied_by_a_rerun(cli, search, sample):
    p = sample
    source = f"{p}events-stats-record-view-2025-05"
    first = js(cli("migrate-month", "2025-05", "--event-types", "view", "--json"))
    assert first["months"][0]["state"] == "done"
    doc = search.first(source)
    for n in range(3):
        search.ok("PUT", f"{source}/_doc/after-switch-{n}", dict(doc, visitor_id=f"after-{n}"))
    again = js(cli("migrate-month", "2025-05", "--event-types", "view", "--json"))
    (month,) = again["months"]
    assert month["state"] == "done" and again["written"] == 3, month
    assert "3 events written to the old index since were copied" in month["message"]
    assert ids(search, f"{source}-v2.0.0") == ids(search, source)
    target = {
        h["_id"]: h["_source"] for h in search.search_all(f"{source}-v2.0.0", {"ids": {"values": ["after-switch-0"]}})
    }
    assert target["after-switch-0"]["visitor_id"] == "after-0" and "community_ids" in target["after-switch-0"]
    # Nothing new: nothing copied.
    assert js(cli("migrate-month", "2025-05", "--event-types", "view", "--json"))["written"] == 0


class LiveWriter(threading.Thread):
    """Writes events to the live month's legacy name, one request each, the way invenio-stats
    does (no retries): new events, and late ones with timestamps from the month's first day."""

    def __init__(self, search, index, template):
        super().__init__(daemon=True)
        self.search, self.index, self.template = search, index, template
        self.written, self.failures, self.stop = [], [], threading.Event()

    def run(self):
        n = 0
        while not self.stop.is_set():
            n += 1
            doc = dict(self.template)
            late = n % 3 == 0
            day = self.template["timestamp"][:8] + "01" if late else datetime.now(timezone.utc).strftime("%Y-%m-%d")
            doc["timestamp"] = f"{day}T00:00:{n % 60:02d}"
            doc["visitor_id"] = f"live-visitor-{n}"
            doc_id = f"live-{n}"
            status, reply = self.search.request("PUT", f"{self.index}/_doc/{doc_id}", doc)
            if status in (200, 201):
                self.written.append(doc_id)
            else:
                self.failures.append((doc_id, status, reply))
            time.sleep(0.01)


def test_live_month_switches_over_while_events_are_written(cli_env, cli, search, index_prefix):
    p = index_prefix
    month = datetime.now(timezone.utc).strftime("%Y-%m")
    today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    cli(
        "load-sample-data",
        "--records",
        "40",
        "--events-per-record",
        "8",
        "--months",
        "1",
        "--end-date",
        today,
        check=True,
    )
    cli("generate-community-events", check=True)
    legacy_name = f"{p}events-stats-record-view-{month}"
    target = f"{legacy_name}-v2.0.0"
    original = ids(search, legacy_name)
    assert len(original) > 50
    template = search.first(legacy_name)
    writer = LiveWriter(search, legacy_name, template)
    writer.start()
    try:
        wait_for(lambda: len(writer.written) >= 20, timeout=30)
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "invenio_community_stats",
                "migrate-events",
                "--event-types",
                "view",
                "--batch-size",
                "20",
                "--json",
            ],
            env=cli_env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        # Keep writing after the switchover: the legacy name now writes into the target.
        after = len(writer.written)
        wait_for(lambda: len(writer.written) >= after + 20, timeout=30)
    finally:
        writer.stop.set()
        writer.join(timeout=30)
    report = js(proc)
    (done,) = report["months"]
    assert done["state"] == "done" and done["switched"], done
    assert writer.failures == []  # no write was refused at any moment of the switchover
    # Every event is in the target once: the copied ones and those written before, during and
    # after the switchover (the late ones too).
    search.ok("POST", f"{target}/_refresh")
    assert ids(search, target) == sorted(set(original) | set(writer.written))
    assert search.count(f"{p}events-stats-record-view") == len(original) + len(writer.written)
    # The legacy name is an alias of the target (its write index); the read alias names the target.
    status, aliases = search.request("GET", f"_alias/{legacy_name}")
    assert status == 200 and list(aliases) == [target]
    assert aliases[target]["aliases"][legacy_name].get("is_write_index") is True
    assert alias_indices(search, f"{p}events-stats-record-view") == [target]
    # Copied events are enriched.
    records = {h["_id"]: h["_source"] for h in search.search_all(f"{p}rdmrecords-records")}
    for hit in search.search_all(target, {"ids": {"values": original[:30]}}):
        assert hit["_source"]["community_ids"] == sorted(
            set(records[hit["_source"]["recid"]]["parent"]["communities"].get("ids", []))
        )
    # The old index is kept as a write-blocked backup outside every alias (no --delete-old-indices).
    backup = f"{legacy_name}-backup"
    kept = set(ids(search, backup))
    assert set(original) <= kept <= set(original) | set(writer.written)
    assert alias_indices(search, f"{p}events-stats-record-view") == [target]
    status, settings = search.request("GET", f"{backup}/_settings")
    assert settings[backup]["settings"]["index"]["blocks"]["write"] == "true"
    # No pipeline is left behind; the status reads the switched month.
    status, _ = search.request("GET", f"_ingest/pipeline/{target}-reroute")
    assert status == 404
    (row,) = js(cli("migration-status", "--event-types", "view", "--json"))
    assert row["state"] == "done" and row["source_count"] is None and row["read_alias"] == "target"
    again = js(cli("migrate-events", "--event-types", "view", "--json"))
    assert again["written"] == 0


def test_late_events_of_a_closed_month_are_caught_up(cli_env, cli, search, sample):
    """Events indexed after the copy began, with timestamps before its checkpoint, are copied."""
    p = sample
    source = f"{p}events-stats-record-view-2025-05"
    first = js(
        cli("migrate-month", "2025-05", "--event-types", "view", "--batch-size", "50", "--max-batches", "3", "--json")
    )
    assert first["months"][0]["state"] == "interrupted"
    template = search.first(source)
    late = []
    for n in range(7):
        doc = dict(template, timestamp=f"2025-05-01T00:00:0{n}", visitor_id=f"late-{n}")
        search.ok("PUT", f"{source}/_doc/late-{n}?refresh=true", doc)
        late.append(f"late-{n}")
    rest = js(cli("migrate-month", "2025-05", "--event-types", "view", "--batch-size", "50", "--json"))
    assert rest["months"][0]["state"] == "done", rest
    assert ids(search, f"{source}-v2.0.0") == ids(search, source)
    assert set(late) <= set(ids(search, f"{source}-v2.0.0"))


def test_dry_run_changes_nothing(cli, search, sample):
    before = sorted(search.indices(f"{sample}*"))
    report = js(cli("migrate-events", "--dry-run", "--json"))
    assert report["dry_run"] and report["written"] == 0 and len(report["months"]) == 6
    assert sorted(search.indices(f"{sample}*")) == before


@pytest.mark.parametrize(
    "args, code, text",
    [
        (["--months", "2024-13"], 2, "YYYY-MM"),
        (["--months", "0000-01"], 2, "YYYY-MM"),
        (["--months", "2024-05:2024-01"], 2, "before the start"),
        (["--batch-size", "0"], 2, "--batch-size"),
        (["--batch-size", "10001"], 2, "--batch-size"),
        (["--max-memory-percent", "0"], 2, "--max-memory-percent"),
        (["--max-memory-percent", "101"], 2, "--max-memory-percent"),
        (["--event-types", "click"], 2, "unknown event type"),
        (["--slices", "0"], 2, "--slices"),
        (["--slices", "17"], 2, "--slices"),
    ],
)
def test_bad_input_changes_nothing(cli, search, sample, args, code, text):
    before = sorted(search.indices(f"{sample}*"))
    proc = cli("migrate-events", *args)
    assert proc.returncode == code, proc.stderr
    assert text in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert sorted(search.indices(f"{sample}*")) == before


def test_missing_sources_and_records_are_clear_errors(cli, search, index_prefix):
    proc = cli("migrate-events")
    assert proc.returncode == 1 and "records index" in proc.stderr
    cli("load-sample-data", "--records", "3", "--events-per-record", "0", check=True)
    proc = cli("migrate-events", "--months", "2020-01")
    assert proc.returncode == 1 and "no legacy event indices" in proc.stderr


def test_an_interrupted_switchover_is_finished_by_the_next_run(cli, search, sample):
    """A run that died right after rerouting writes (kill -9 between steps 1 and 5 of the
    switchover) leaves the month rerouted: the next run finishes the switchover, even for a
    month that has closed since, and loses nothing written in between."""
    p = sample
    source = f"{p}events-stats-record-view-2025-05"
    target = f"{source}-v2.0.0"
    first = js(
        cli("migrate-month", "2025-05", "--event-types", "view", "--batch-size", "50", "--max-batches", "2", "--json")
    )
    assert first["months"][0]["state"] == "interrupted"
    original = ids(search, source)
    # What step 1 leaves behind when the process is killed right after it.
    pipeline = f"{target}-reroute"
    search.ok("PUT", f"_ingest/pipeline/{pipeline}", {"processors": [{"set": {"field": "_index", "value": target}}]})
    search.ok("PUT", f"{source}/_settings", {"index": {"default_pipeline": pipeline}})
    template = search.first(source)
    for n in range(5):
        search.ok("PUT", f"{source}/_doc/rerouted-{n}?refresh=true", dict(template, visitor_id=f"rerouted-{n}"))
    assert ids(search, source) == original  # the writes went to the target
    (row,) = js(cli("migration-status", "--months", "2025-05", "--event-types", "view", "--json"))
    assert row["read_alias"] == "source"
    done = js(cli("migrate-month", "2025-05", "--event-types", "view", "--batch-size", "50", "--json"))
    (month,) = done["months"]
    assert month["state"] == "done" and month["switched"], month
    assert ids(search, target) == sorted(set(original) | {f"rerouted-{n}" for n in range(5)})
    status, aliases = search.request("GET", f"_alias/{source}")
    assert status == 200 and list(aliases) == [target]
    assert target in alias_indices(search, f"{p}events-stats-record-view")
    assert set(ids(search, f"{source}-backup")) == set(original)
    status, _ = search.request("GET", f"_ingest/pipeline/{pipeline}")
    assert status == 404


def test_live_month_with_its_own_ingest_pipeline_is_left_alone(cli, search, index_prefix):
    """The switchover would replace a default pipeline the operator set on the live month's
    index: the month fails with the reason, and nothing about the legacy index changes."""
    p = index_prefix
    month = datetime.now(timezone.utc).strftime("%Y-%m")
    today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    cli(
        "load-sample-data",
        "--records",
        "20",
        "--events-per-record",
        "4",
        "--months",
        "1",
        "--end-date",
        today,
        check=True,
    )
    legacy_name = f"{p}events-stats-record-view-{month}"
    search.ok(
        "PUT", f"_ingest/pipeline/{p}operators-own", {"processors": [{"set": {"field": "referrer", "value": "x"}}]}
    )
    search.ok("PUT", f"{legacy_name}/_settings", {"index": {"default_pipeline": f"{p}operators-own"}})
    original = ids(search, legacy_name)
    proc = cli("migrate-events", "--event-types", "view", "--json")
    assert proc.returncode == 1, proc.stderr
    (m,) = json.loads(proc.stdout)["months"]
    assert m["state"] == "failed" and not m["switched"]
    assert "own default ingest pipeline" in m["message"] and f"{p}operators-own" in m["message"]
    # Nothing changed for invenio-stats: same index, same pipeline, still read, still written.
    status, settings = search.request("GET", f"{legacy_name}/_settings")
    index_settings = settings[legacy_name]["settings"]["index"]
    assert index_settings["default_pipeline"] == f"{p}operators-own" and "blocks" not in index_settings
    assert alias_indices(search, f"{p}events-stats-record-view") == [legacy_name]
    status, _ = search.request("GET", f"_ingest/pipeline/{legacy_name}-v2.0.0-reroute")
    assert status == 404
    search.ok("PUT", f"{legacy_name}/_doc/after-failure?refresh=true", search.first(legacy_name))
    assert ids(search, legacy_name) == sorted([*original, "after-failure"])


def test_a_second_migration_is_refused_while_one_runs(cli, cli_env, search, sample, tmp_path):
    """One migration per index prefix: a foreground run while a background one copies is
    refused, naming the holder's host, PID and start time; nothing is written twice and the
    first run completes."""
    p = sample
    pid_dir = str(tmp_path / "pids")
    started = js(cli("migrate-events-background", "--batch-size", "1", "--slices", "1", "--pid-dir", pid_dir, "--json"))
    from invenio_community_stats import processes

    assert wait_for(lambda: processes.status("event-migration", pid_dir)["processed"] > 0, timeout=60)
    lock = search.request("GET", f"{p}stats-community-locks/_doc/migration")[1]["_source"]
    assert lock["pid"] == started["pid"]
    second = cli("migrate-events", "--json")
    assert second.returncode == 1, second.stdout
    (error,) = [line for line in second.stderr.splitlines() if line.startswith("Error:")]
    assert f"another event migration is running (host:PID {lock['owner']} since {lock['acquired']}" in error
    assert lock["owner"].endswith(f":{started['pid']}")
    # clear-migration-checkpoints waits for no one either: refused the same way.
    cleared = cli("clear-migration-checkpoints", "--yes-i-know")
    assert cleared.returncode == 1 and "another event migration is running" in cleared.stderr
    processes.cancel("event-migration", pid_dir, timeout=60)
    assert search.request("GET", f"{p}stats-community-locks/_doc/migration")[0] == 404, "released on cancel"
    report = js(cli("migrate-events", "--json"))
    assert report["done"] == 6 and report["failed"] == 0
    assert ids(search, f"{p}events-stats-*-v2.0.0") == ids(search, legacy(p, "*"))


def test_a_stale_migration_lock_is_taken_over(cli, search, sample):
    """A lock whose holder ran here and is gone, or whose time ran out, does not block; one
    held by a live run on another host does, until clear-lock removes it."""
    p = sample
    js(cli("migrate-events", "--months", "2025-04", "--json"))  # creates the lock index
    lock_url = f"{p}stats-community-locks/_doc/migration?refresh=true"
    far = 4_102_444_800_000  # 2100-01-01
    search.ok(
        "PUT", lock_url, {"owner": "otherhost:4242", "pid": 4242, "acquired": "2025-07-01T10:00:00", "expires": far}
    )
    blocked = cli("migrate-events", "--months", "2025-05")
    assert blocked.returncode == 1 and "(host:PID otherhost:4242 since 2025-07-01T10:00:00" in blocked.stderr
    listed = cli("clear-lock", "--list-locks")
    assert "migration    held by otherhost:4242" in listed.stdout, listed.stdout
    dry = cli("clear-lock", "--lock-name", "migration", "--dry-run")
    assert "Would remove the migration lock held by otherhost:4242" in dry.stdout
    assert search.request("GET", lock_url)[0] == 200
    assert "Removed the migration lock" in cli("clear-lock", "--lock-name", "migration").stdout
    assert js(cli("migrate-events", "--months", "2025-05", "--json"))["done"] == 2
    # A dead holder on this host (a kill -9), then an expired one: both taken over at once.
    import socket

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = socket.gethostname()
    search.ok(
        "PUT",
        lock_url,
        {"owner": f"{host}:{dead.pid}", "pid": dead.pid, "acquired": "2025-07-01T10:00:00", "expires": far},
    )
    assert js(cli("migrate-events", "--months", "2025-06", "--event-types", "view", "--json"))["done"] == 1
    search.ok("PUT", lock_url, {"owner": "crashed:1", "pid": 1, "acquired": "2025-07-01T10:00:00", "expires": 1000})
    assert js(cli("migrate-events", "--months", "2025-06", "--json"))["failed"] == 0
