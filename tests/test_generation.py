"""generate-community-events and generate-usage-events against the real OpenSearch node,
with expected figures computed from the records each test writes."""

import json
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import datetime, timezone

import pytest

from conftest import wait_for
from helpers import js
from records_fixture import record, reindex_under_reference_mapping, write

C1 = "11111111-1111-4111-a111-111111111111"
C2 = "22222222-2222-4222-a222-222222222222"
COMMUNITIES = [{"id": C1, "slug": "physics"}, {"id": C2, "slug": "history"}]


def events(search, prefix):
    return {h["_id"]: h["_source"] for h in search.search_all(f"{prefix}stats-community-events-*")}


# ---------------------------------------------------------------- community events


def test_community_events_backfill_exact_fields_and_idempotent(cli, search, index_prefix):
    records = [
        record("aaaaa-00001", "2024-03-01T10:00:00+00:00", [C1], publication_date="2020/2021"),
        record("aaaaa-00002", "2024-03-02T11:00:00+00:00", [C1, C2], publication_date="2019-05"),
        record("aaaaa-00003", "2025-01-05T12:00:00+00:00", [], publication_date="2018-02-03"),
        record("aaaaa-00004", "2024-04-01T00:00:00+00:00", [C2], deleted_at="2024-05-01T08:00:00+00:00"),
    ]
    write(search, index_prefix, records, COMMUNITIES)
    expected = {(r["id"], c) for r in records for c in ["global", *r["parent"]["communities"].get("ids", [])]}

    dry = js(cli("community-events-status", "--json"))
    assert dry["events_created"] == len(expected) and dry["events_existing"] == 0
    assert search.indices(f"{index_prefix}stats-community-events-*") == []

    report = js(cli("generate-community-events", "--json"))
    assert report["records_processed"] == 4
    assert report["events_created"] == len(expected) == 8
    assert report["deleted_records"] == 1
    got = events(search, index_prefix)
    assert {(d["record_id"], d["community_id"]) for d in got.values()} == expected
    assert len(got) == len(expected)
    by_key = {(d["record_id"], d["community_id"]): (i, d) for i, d in got.items()}
    _id, d = by_key[("aaaaa-00001", C1)]
    assert _id == f"aaaaa-00001-{C1}-added"
    assert d["event_type"] == "added"
    assert d["event_date"].startswith("2024-03-01T10:00:00")
    assert d["record_created_date"].startswith("2024-03-01T10:00:00")
    assert d["record_published_date"] == "2020-01-01T00:00:00"  # EDTF interval -> its start
    assert d["is_deleted"] is False and "deleted_date" not in d
    assert by_key[("aaaaa-00002", "global")][1]["record_published_date"] == "2019-05-01T00:00:00"
    deleted = by_key[("aaaaa-00004", C2)][1]
    assert deleted["is_deleted"] is True and deleted["deleted_date"].startswith("2024-05-01T08:00:00")
    # One index per year of the event date.
    assert search.indices(f"{index_prefix}stats-community-events-*") == [
        f"{index_prefix}stats-community-events-2024",
        f"{index_prefix}stats-community-events-2025",
    ]

    again = js(cli("generate-community-events", "--json"))
    assert again["events_created"] == 0 and again["events_existing"] == 8
    assert len(events(search, index_prefix)) == 8


def test_record_ids_and_community_slug_filter(cli, search, index_prefix):
    records = [record(f"bbbbb-0000{i}", f"2024-06-0{i}T00:00:00Z", [C1]) for i in range(1, 4)]
    records.append(record("bbbbb-00009", "2024-06-09T00:00:00Z", [C2]))
    write(search, index_prefix, records, COMMUNITIES)
    report = js(
        cli("generate-community-events", "--record-ids", "bbbbb-00001", "--record-ids", "bbbbb-00002", "--json")
    )
    assert report["records_processed"] == 2 and report["events_created"] == 4
    search.request("DELETE", f"{index_prefix}stats-community-events-*")
    report = js(cli("generate-community-events", "--community-id", "history", "--json"))
    assert report["communities"] == [C2]
    got = events(search, index_prefix)
    assert [(d["record_id"], d["community_id"]) for d in got.values()] == [("bbbbb-00009", C2)]


def test_created_date_filters(cli, search, index_prefix):
    records = [record(f"ccccc-0000{i}", f"2024-01-0{i}T12:00:00Z", [C1]) for i in range(1, 6)]
    write(search, index_prefix, records, COMMUNITIES)
    report = js(cli("generate-community-events", "--start-date", "2024-01-02", "--end-date", "2024-01-04", "--json"))
    assert report["records_processed"] == 3
    assert {d["record_id"] for d in events(search, index_prefix).values()} == {
        "ccccc-00002",
        "ccccc-00003",
        "ccccc-00004",
    }


def test_unreadable_publication_date_is_reported_not_silently_null(cli, search, index_prefix):
    write(
        search,
        index_prefix,
        [record("ddddd-00001", "2024-01-01T00:00:00Z", [], publication_date="sometime")],
        COMMUNITIES,
    )
    proc = cli("generate-community-events")
    assert proc.returncode == 0
    assert "could not be read" in proc.stderr and "ddddd-00001" in proc.stderr
    (doc,) = events(search, index_prefix).values()
    assert "record_published_date" not in doc


def test_concurrent_runs_never_duplicate(cli_env, search, index_prefix):
    records = [record(f"eeeee-{i:05d}", "2024-02-01T00:00:00Z", [C1, C2]) for i in range(300)]
    write(search, index_prefix, records, COMMUNITIES)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "invenio_community_stats", "generate-community-events", "--json"],
            env=cli_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    reports = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        reports.append(json.loads(out))
    assert sum(r["events_created"] for r in reports) == 900
    assert search.count(f"{index_prefix}stats-community-events") == 900


def test_community_events_index_under_the_reference_template(cli, search, index_prefix):
    write(
        search,
        index_prefix,
        [record("fffff-00001", "2024-01-01T00:00:00Z", [C1], deleted_at="2024-02-01T00:00:00Z")],
        COMMUNITIES,
    )
    js(cli("generate-community-events", "--json"))
    errors, n = reindex_under_reference_mapping(
        search, f"{index_prefix}stats-community-events-*", "stats-community-events-v1.0.0", f"{index_prefix}ref-ce"
    )
    assert n == 2 and errors == []


@pytest.mark.parametrize(
    "args, text",
    [
        (["--start-date", "2024-13-01"], "not a date"),
        (["--start-date", "2024-02-01", "--end-date", "2024-01-01"], "before start"),
        (["--community-id", "no-such-slug"], "unknown community"),
    ],
)
def test_community_events_bad_input_writes_nothing(cli, search, index_prefix, args, text):
    write(search, index_prefix, [record("ggggg-00001", "2024-01-01T00:00:00Z", [C1])], COMMUNITIES)
    proc = cli("generate-community-events", *args)
    assert proc.returncode == 2, proc.stderr
    assert text in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert search.indices(f"{index_prefix}stats-community-events-*") == []


def test_missing_records_index_is_a_clear_error(cli, search, index_prefix):
    proc = cli("generate-community-events")
    assert proc.returncode == 1 and "records index" in proc.stderr


# ---------------------------------------------------------------- usage events


def usage(search, prefix, kind):
    return search.search_all(f"{prefix}events-stats-{kind}-*")


def test_reference_scenario_exact_counts_inside_the_window(cli, search, index_prefix):
    write(
        search,
        index_prefix,
        [
            record("hhhhh-00001", "2024-06-01T10:00:00Z", [C1], files=1),
            record("hhhhh-00002", "2024-06-15T10:00:00Z", [C1], files=1),
            record("hhhhh-00003", "2024-09-01T10:00:00Z", [C1], files=1),  # outside the records range
        ],
        COMMUNITIES,
    )
    report = js(
        cli(
            "generate-usage-events",
            "--start-date",
            "2024-06-01",
            "--end-date",
            "2024-08-07",
            "--events-per-record",
            "50",
            "--event-start-date",
            "2024-06-01",
            "--event-end-date",
            "2024-12-31",
            "--json",
        )
    )
    assert report["records_processed"] == 2
    assert report["written"] == 200 and report["failed"] == 0
    views, downloads = usage(search, index_prefix, "record-view"), usage(search, index_prefix, "file-download")
    assert len(views) == 100 and len(downloads) == 100
    months = Counter()
    for hit in views + downloads:
        d = hit["_source"]
        created = "2024-06-01T10:00:00" if d["recid"] == "hhhhh-00001" else "2024-06-15T10:00:00"
        assert created <= d["timestamp"] <= "2024-12-31T23:59:59", d["timestamp"]
        assert hit["_index"].endswith(d["timestamp"][:7])
        months[d["timestamp"][:7]] += 1
        assert isinstance(d["visitor_id"], str) and isinstance(d["via_api"], bool)
        # As invenio-stats writes them: a country or null, a referrer or null, never a robot.
        assert d["country"] is None or len(d["country"]) == 2
        assert "referrer" in d and d["is_robot"] is False
        assert d["updated_timestamp"].endswith("+00:00") and len(d["updated_timestamp"]) == 32
    # Spread over the whole window, not piled into the first months.
    assert set(months) == {f"2024-{m:02d}" for m in range(6, 13)}
    for hit in views:
        d = hit["_source"]
        assert not {"bucket_id", "file_id", "file_key", "size"} & set(d)
        assert d["unique_id"] == f"{'api' if d['via_api'] else 'ui'}_{d['recid']}"
    assert {h["_source"]["via_api"] for h in views} == {True, False}
    # Real records carry no bucket id: it is derived from the record id (README).
    for hit in downloads:
        d = hit["_source"]
        assert d["bucket_id"] == str(uuid.uuid5(uuid.NAMESPACE_URL, f"invenio-community-stats:bucket:{d['recid']}"))
        assert d["file_id"] == f"file-{d['recid']}-0" and d["file_key"] == "f0.pdf" and d["size"] == 1000
        assert d["unique_id"] == f"{d['bucket_id']}_{d['file_id']}"


def test_records_with_restricted_files_get_views_and_the_report_says_why_no_downloads(cli, search, index_prefix):
    """A public record with restricted or embargoed files is indexed as files: {enabled: true}
    (no entries): no download can name its files, and the run says so instead of a silent 0."""
    write(
        search,
        index_prefix,
        [
            record("rrrrr-00001", "2024-06-01T10:00:00Z", [C1], files=2, file_access="restricted"),
            record("rrrrr-00002", "2024-06-01T10:00:00Z", [C1], files=1, file_access="embargoed"),
            record("rrrrr-00003", "2024-06-01T10:00:00Z", [C1], files=1),
            record("rrrrr-00004", "2024-06-01T10:00:00Z", [C1]),
        ],
        COMMUNITIES,
    )
    proc = cli(
        "generate-usage-events",
        "--events-per-record",
        "4",
        "--event-start-date",
        "2024-06-01",
        "--event-end-date",
        "2024-06-30",
        check=True,
    )
    assert "2 records have files that the records index does not list" in proc.stderr
    report = js(
        cli(
            "generate-usage-events",
            "--events-per-record",
            "4",
            "--event-start-date",
            "2024-06-01",
            "--event-end-date",
            "2024-06-30",
            "--json",
        )
    )
    assert report["records_with_unlisted_files"] == 2 and report["already_present"] == 20
    downloads = usage(search, index_prefix, "file-download")
    assert {h["_source"]["recid"] for h in downloads} == {"rrrrr-00003"} and len(downloads) == 4
    assert len(usage(search, index_prefix, "record-view")) == 16


def test_documents_the_node_refuses_are_counted_with_their_reasons_and_fail_the_run(cli, search, index_prefix):
    write(search, index_prefix, [record("hhhhh-00009", "2024-01-01T00:00:00Z", [], files=0)], COMMUNITIES)
    # February's view index exists with `country` as a number: its events are refused for good.
    search.ok(
        "PUT",
        f"{index_prefix}events-stats-record-view-2024-02",
        {"mappings": {"properties": {"country": {"type": "integer"}}}},
    )
    args = [
        "generate-usage-events",
        "--events-per-record",
        "6",
        "--event-start-date",
        "2024-01-01",
        "--event-end-date",
        "2024-03-31",
    ]
    proc = cli(*args, "--json")
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    views = usage(search, index_prefix, "record-view")
    assert report["written"] == 4 == len(views) and report["failed"] == 2
    assert {h["_source"]["timestamp"][:7] for h in views} == {"2024-01", "2024-03"}
    assert len(report["failure_reasons"]) == 2
    for reason in report["failure_reasons"]:
        assert reason.startswith("2024-02-") and "mapper_parsing_exception" in reason, reason
    errors = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and errors[0].startswith("Error: 2 documents failed, e.g. 2024-02-"), proc.stderr
    # A re-run writes only what is missing (nothing, as long as the mapping refuses it).
    again = cli(*args)
    assert again.returncode == 1 and "wrote 0, 4 already present, 2 failed" in again.stdout


def test_max_records_and_no_files_means_no_downloads(cli, search, index_prefix):
    write(
        search,
        index_prefix,
        [record(f"iiiii-0000{i}", "2024-01-01T00:00:00Z", [], files=0) for i in range(3)],
        COMMUNITIES,
    )
    report = js(
        cli(
            "generate-usage-events",
            "--max-records",
            "2",
            "--events-per-record",
            "2",
            "--event-end-date",
            "2024-03-31",
            "--json",
        )
    )
    assert report["records_processed"] == 2
    assert report["view_events"] == 4 and report["download_events"] == 0
    assert len(usage(search, index_prefix, "record-view")) == 4


def test_without_an_end_date_a_rerun_and_a_resume_after_kill_9_add_nothing(cli, cli_env, search, index_prefix):
    """The window's end ("now") is fixed by the first run with the same options: a later
    re-run, and the resume of a run killed part-way, make the same events (same _ids); a dry
    run counts what is already there."""
    write(
        search,
        index_prefix,
        [record(f"kkkkk-{i:05d}", "2024-01-01T00:00:00Z", [C1], files=1) for i in range(60)],
        COMMUNITIES,
    )
    args = ["generate-usage-events", "--events-per-record", "60", "--seed", "5", "--json"]
    job = subprocess.Popen(
        [sys.executable, "-m", "invenio_community_stats", *args],
        env=cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert wait_for(lambda: search.count_if_ready(f"{index_prefix}events-stats-*") > 100, timeout=60)
    job.kill()
    job.wait(timeout=30)
    time.sleep(1.1)  # a later "now"
    report = js(cli(*args))
    expected = report["view_events"] + report["download_events"]
    assert expected == 60 * 120 and report["failed"] == 0
    assert report["written"] + report["already_present"] == expected and report["already_present"] > 0
    assert search.count(f"{index_prefix}events-stats-*") == expected
    time.sleep(1.1)
    dry = js(cli(*args, "--dry-run"))
    assert dry["already_present"] == expected and dry["window_end"] == report["window_end"]
    again = js(cli(*args))
    assert (again["written"], again["already_present"]) == (0, expected)
    assert search.count(f"{index_prefix}events-stats-*") == expected
    # A dry run of other options counts nothing present; an explicit end date is its own window.
    assert js(cli(*args[:-3], "--seed", "6", "--json", "--dry-run"))["already_present"] == 0


def test_seed_reproduces_byte_identical_documents_and_rerun_adds_nothing(cli, cli_env, search, index_prefix):
    recs = [record(f"jjjjj-0000{i}", "2024-01-01T00:00:00Z", [C1], files=2) for i in range(3)]
    write(search, index_prefix, recs, COMMUNITIES)
    args = [
        "generate-usage-events",
        "--events-per-record",
        "7",
        "--event-end-date",
        "2024-06-30",
        "--seed",
        "99",
        "--json",
    ]
    first = js(cli(*args))
    assert first["written"] == 42
    second = js(cli(*args))
    assert second["written"] == 0 and second["already_present"] == 42
    other = index_prefix + "b-"
    try:
        write(search, other, recs, COMMUNITIES)
        js(cli("--index-prefix", other, *args))
        a = {h["_id"]: json.dumps(h["_source"], sort_keys=True) for h in usage(search, index_prefix, "*")}
        b = {h["_id"]: json.dumps(h["_source"], sort_keys=True) for h in usage(search, other, "*")}
        assert a == b and len(a) == 42
        different = js(cli("--index-prefix", other, *args[:-3], "--seed", "100", "--json"))
        assert different["written"] == 42
    finally:
        search.request("DELETE", f"{other}*")


def test_window_edges_and_never_in_the_future(cli, search, index_prefix):
    today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    write(search, index_prefix, [record("kkkkk-00001", "2024-03-10T15:30:00Z", [], files=1)], COMMUNITIES)
    js(
        cli(
            "generate-usage-events",
            "--events-per-record",
            "20",
            "--event-start-date",
            "2024-03-10",
            "--event-end-date",
            "2024-03-10",
            "--json",
        )
    )
    for hit in usage(search, index_prefix, "*"):
        assert "2024-03-10T15:30:00" <= hit["_source"]["timestamp"] <= "2024-03-10T23:59:59"
    search.request("DELETE", f"{index_prefix}events-stats-*")
    js(
        cli(
            "generate-usage-events",
            "--events-per-record",
            "20",
            "--event-start-date",
            "2026-01-01",
            "--event-end-date",
            "2999-12-31",
            "--seed",
            "5",
            "--json",
        )
    )
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    stamps = [h["_source"]["timestamp"] for h in usage(search, index_prefix, "*")]
    assert stamps and all("2026-01-01T00:00:00" <= s <= now for s in stamps) and max(stamps) <= today + "T23:59:59"


def test_enriched_events_have_membership_of_their_day_and_fit_the_reference_template(cli, search, index_prefix):
    write(search, index_prefix, [record("lllll-00001", "2024-01-01T00:00:00Z", [C2], files=1)], COMMUNITIES)
    # Membership history: in C1 from Feb 1 to the end of Mar 15; in C2 from Mar 1.
    lines = [
        ("added", C1, "2024-02-01T00:00:00"),
        ("removed", C1, "2024-03-15T12:00:00"),
        ("added", C2, "2024-03-01T00:00:00"),
    ]
    from invenio_community_stats import _core

    search.ok(
        "PUT",
        f"_index_template/{index_prefix}stats-community-events-v1.0.0",
        json.loads(_core.index_template("stats-community-events-v1.0.0", index_prefix)),
    )
    for kind, comm, date in lines:
        search.ok(
            "PUT",
            f"{index_prefix}stats-community-events-2024/_doc/{comm}-{kind}?refresh=true",
            {"record_id": "lllll-00001", "community_id": comm, "event_type": kind, "event_date": date},
        )
    js(
        cli(
            "generate-usage-events",
            "--events-per-record",
            "60",
            "--event-end-date",
            "2024-04-30",
            "--enrich-events",
            "--json",
        )
    )
    docs = [h["_source"] for h in usage(search, index_prefix, "*")]
    assert len(docs) == 120
    for d in docs:
        day = d["timestamp"][:10]
        expected = sorted(([C1] if "2024-02-01" <= day <= "2024-03-15" else []) + ([C2] if day >= "2024-03-01" else []))
        assert d["community_ids"] == expected, d["timestamp"]
        assert d["resource_type"] == {
            "id": "dataset",
            "title": {"en": "Dataset", "de": "Datensatz"},
            "props": {"type": "dataset", "subtype": ""},
        }
        assert d["funders"] == [{"id": "00k4n6c32", "name": "European Commission"}]
        assert d["journal_title"] == "Journal of Tests" and d["publisher"] == "Test Press"
    for kind, tpl in [("record-view", "record-view-v2.0.0"), ("file-download", "file-download-v2.0.0")]:
        errors, n = reindex_under_reference_mapping(
            search, f"{index_prefix}events-stats-{kind}-*", tpl, f"{index_prefix}ref-{kind}"
        )
        assert n == 60 and errors == []


@pytest.mark.parametrize(
    "args, text",
    [
        (["--event-start-date", "yesterday"], "not a date"),
        (["--event-start-date", "0001-01-01"], "out of range"),
        (["--event-start-date", "2024-05-01", "--event-end-date", "2024-04-01"], "before start"),
        (["--start-date", "2024-05-01", "--end-date", "2024-04-01"], "before start"),
        (["--events-per-record", "-1"], "-1"),
        (["--max-records", "-5"], "-5"),
    ],
)
def test_usage_events_bad_input_writes_nothing(cli, search, index_prefix, args, text):
    write(search, index_prefix, [record("mmmmm-00001", "2024-01-01T00:00:00Z", [], files=1)], COMMUNITIES)
    proc = cli("generate-usage-events", *args)
    assert proc.returncode == 2, proc.stderr
    assert text in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert search.indices(f"{index_prefix}events-stats-*") == []


def test_dry_run_writes_nothing(cli, search, index_prefix):
    write(search, index_prefix, [record("nnnnn-00001", "2024-01-01T00:00:00Z", [], files=1)], COMMUNITIES)
    report = js(
        cli(
            "generate-usage-events", "--events-per-record", "3", "--event-end-date", "2024-02-01", "--dry-run", "--json"
        )
    )
    assert report["view_events"] == 3 and report["download_events"] == 3 and report["written"] == 0
    assert search.indices(f"{index_prefix}events-stats-*") == []


def test_every_published_version_gets_events_drafts_do_not(cli, search, index_prefix):
    # Two published versions of one parent, and an unpublished one (never indexed as a
    # record in a real instance, but if present it gets nothing).
    write(
        search,
        index_prefix,
        [
            record("vvvvv-00001", "2024-01-01T00:00:00Z", [C1], parent="ppppp-00001"),
            record("vvvvv-00002", "2024-02-01T00:00:00Z", [C1], parent="ppppp-00001"),
            record("vvvvv-00003", "2024-03-01T00:00:00Z", [C1], parent="ppppp-00001", is_published=False),
        ],
        COMMUNITIES,
    )
    report = js(cli("generate-community-events", "--json"))
    assert report["records_processed"] == 2
    got = {(d["record_id"], d["community_id"]) for d in events(search, index_prefix).values()}
    assert got == {("vvvvv-00001", "global"), ("vvvvv-00001", C1), ("vvvvv-00002", "global"), ("vvvvv-00002", C1)}


def test_migrated_indices_are_refused_for_months_not_migrated(cli, search, index_prefix):
    """Generating into the v2 index of a month whose legacy index still holds events would
    hide them from reads and make the month's migration fail its verification."""
    p = index_prefix
    cli(
        "load-sample-data",
        "--records",
        "30",
        "--events-per-record",
        "4",
        "--months",
        "2",
        "--end-date",
        "2025-06-30",
        check=True,
    )
    cli("generate-community-events", check=True)
    before = {i: search.count(i) for i in search.indices(f"{p}*")}
    args = [
        "generate-usage-events",
        "--use-migrated-indices",
        "--event-start-date",
        "2025-06-01",
        "--event-end-date",
        "2025-06-30",
    ]
    proc = cli(*args)
    assert proc.returncode == 2, proc.stderr
    assert "not migrated yet" in proc.stderr and f"{p}events-stats-record-view-2025-06 (" in proc.stderr
    assert proc.stderr.strip().count("\n") == 0
    assert {i: search.count(i) for i in search.indices(f"{p}*")} == before  # nothing written
    # Once June is migrated (May is not, but lies outside the window) it is allowed.
    assert js(cli("migrate-month", "2025-06", "--json"))["done"] == 2
    report = js(cli(*args, "--events-per-record", "3", "--json"))
    assert report["written"] > 0 and all(i.endswith("2025-06-v2.0.0") for i in report["indices"]), report
