"""Every job on a real InvenioRDM instance's indices: InvenioRDM's own mappings and templates
(``invenio_rdm``), documents in the shapes a real instance holds, and what such an instance
does that our own data never did (timestamps in every form the legacy mapping takes, events
written unenriched after the switch, community events written by another tool, a search the
cluster refuses). Expected figures are computed here from what the cluster holds."""

import json
from collections import defaultdict
from datetime import datetime, timedelta, timezone

import invenio_rdm
from helpers import ids, js

C1 = "11111111-1111-4111-a111-111111111111"


def members(record):
    return set(record["parent"]["communities"].get("ids", []))


def test_every_job_on_a_real_instance_is_exact(cli, search, index_prefix):
    """Sample (real mappings and shapes) -> backfill -> migration -> aggregation, checked
    against the documents themselves: every legacy month migrates, every migrated event
    carries its record's communities and resource type, the usage deltas equal the events
    per community and day, the records snapshot's split equals the instance's."""
    p = index_prefix
    end = "2025-06-30"
    cli(
        "load-sample-data",
        "--records",
        "150",
        "--communities",
        "3",
        "--events-per-record",
        "6",
        "--months",
        "3",
        "--end-date",
        end,
        check=True,
    )
    js(cli("generate-community-events", "--json"))
    legacy_ids = ids(search, f"{p}events-stats-*-2025-0*")
    report = js(cli("migrate-events", "--json"))
    assert report["failed"] == 0 and report["done"] == 6
    migrated = search.search_all(f"{p}events-stats-*-v2.0.0", size=10000)
    assert sorted(h["_id"] for h in migrated) == legacy_ids
    records = {h["_source"]["id"]: h["_source"] for h in search.search_all(f"{p}rdmrecords-records")}
    for hit in migrated:
        d, r = hit["_source"], records[hit["_source"]["recid"]]
        assert set(d["community_ids"]) == members(r)
        assert d["resource_type"]["id"] == r["metadata"]["resource_type"]["id"]
        assert d["access_status"] == r["access"]["status"]

    busiest = max(
        (c for r in records.values() for c in members(r)),
        key=lambda c: sum(1 for r in records.values() if c in members(r)),
    )
    agg = js(cli("aggregate", "--community-id", busiest, "--community-id", "global", "--end-date", end, "--json"))
    assert agg["errors"] == 0 and not agg["incomplete"]
    # Usage deltas: the events per community and day, counted here from the migrated events.
    expected = defaultdict(lambda: defaultdict(int))
    for hit in migrated:
        d = hit["_source"]
        kind = "download" if "file_id" in d else "view"
        for community in ["global", *d["community_ids"]]:
            expected[(community, d["timestamp"][:10])][kind] += 1
    for community in (busiest, "global"):
        deltas = search.search_all(f"{p}stats-community-usage-delta", {"term": {"community_id": community}})
        by_day = {h["_source"]["period_start"][:10]: h["_source"]["totals"] for h in deltas}
        assert {day for (c, day) in expected if c == community} <= set(by_day)
        for day, totals in by_day.items():
            got = {k: totals[k]["total_events"] for k in ("view", "download")}
            assert got == {k: expected[(community, day)][k] for k in ("view", "download")}, (community, day)
    # Records snapshot: with files / metadata-only as the instance's records say (restricted
    # and embargoed files included; tombstones out).
    snap = {
        h["_source"]["snapshot_date"][:10]: h["_source"]
        for h in search.search_all(f"{p}stats-community-records-snapshot-added", {"term": {"community_id": "global"}})
    }
    live = [r for r in records.values() if not r["is_deleted"] and r["created"][:10] <= end]
    split = {
        "with_files": sum(1 for r in live if r["files"]["enabled"]),
        "metadata_only": sum(1 for r in live if not r["files"]["enabled"]),
    }
    assert any(r["files"] == {"enabled": True} for r in live)
    assert snap[end]["total_records"] == split


def test_every_legacy_timestamp_form_migrates_as_utc_seconds(cli, search, index_prefix):
    """The legacy mapping takes strict_date_optional_time (fractions, Z, offsets, a bare
    date: imports and other tools write them); the v2 mapping takes UTC seconds only."""
    p = index_prefix
    invenio_rdm.write(
        search,
        p,
        [invenio_rdm.record("ttttt-00001", "2025-01-01T00:00:00", [C1])],
        [invenio_rdm.community(C1, "physics", True)],
    )
    forms = {
        "2025-05-10T10:00:00": "2025-05-10T10:00:00",
        "2025-05-10T10:00:01.123456": "2025-05-10T10:00:01",
        "2025-05-10T10:00:02.5Z": "2025-05-10T10:00:02",
        "2025-05-10T12:00:03+02:00": "2025-05-10T10:00:03",
        "2025-05-10T05:00:04-05:00": "2025-05-10T10:00:04",
        "2025-05-11": "2025-05-11T00:00:00",
    }
    actions, expected = [], {}
    for n, (stored, utc) in enumerate(forms.items()):
        _id, doc = invenio_rdm.event("view", "2025-05-10T10:00:00", "ttttt-00001", "p-ttttt-00001", f"v{n}")
        doc["timestamp"] = stored
        actions.append((f"{p}events-stats-record-view-2025-05", _id, doc))
        expected[_id] = utc
    invenio_rdm.bulk(search, actions)
    js(cli("generate-community-events", "--json"))
    report = js(cli("migrate-events", "--json"))
    assert (report["done"], report["failed"]) == (1, 0), report
    got = {
        h["_id"]: h["_source"]["timestamp"] for h in search.search_all(f"{p}events-stats-record-view-2025-05-v2.0.0")
    }
    assert got == expected
    assert all(
        h["_source"]["community_ids"] == [C1] for h in search.search_all(f"{p}events-stats-record-view-2025-05-v2.0.0")
    )


def test_events_written_after_the_switch_count_for_their_community_at_the_next_aggregate(cli, search, index_prefix):
    """invenio-stats goes on writing plain events to the legacy name (an alias of the v2
    index after the switch), and creates new months from the v2 template: the next
    aggregate enriches them first, so they count for their communities."""
    p = index_prefix
    now = datetime.now(timezone.utc)
    today, month = now.strftime("%Y-%m-%d"), now.strftime("%Y-%m")
    last_month_day = (now.replace(day=1) - timedelta(days=1)).strftime("%Y-%m-%d")
    invenio_rdm.write(
        search,
        p,
        [
            invenio_rdm.record("wwwww-00001", "2024-01-01T00:00:00", [C1]),
            invenio_rdm.record("wwwww-00002", "2024-01-01T00:00:00", []),
        ],
        [invenio_rdm.community(C1, "physics", True)],
    )
    first = [
        invenio_rdm.event("view", f"{today}T00:00:0{n}", "wwwww-00001", "p-wwwww-00001", f"before-{n}")
        for n in range(3)
    ]
    invenio_rdm.bulk(search, [(f"{p}events-stats-record-view-{month}", i, d) for i, d in first])
    js(cli("generate-community-events", "--json"))
    assert js(cli("migrate-events", "--event-types", "view", "--json"))["done"] == 1
    legacy_name = f"{p}events-stats-record-view-{month}"

    def community_views(day):
        agg = js(
            cli(
                "aggregate",
                "--community-id",
                "physics",
                "--aggregation-type",
                "community-usage-delta-agg",
                "--start-date",
                day,
                "--end-date",
                day,
                "--json",
            )
        )
        hits = search.search_all(f"{p}stats-community-usage-delta", {"term": {"community_id": C1}})
        by_day = {h["_source"]["period_start"][:10]: h["_source"]["totals"]["view"]["total_events"] for h in hits}
        return agg["late_enrichment"], by_day.get(day, 0)

    late, views = community_views(today)
    assert (late["events_enriched"], views) == (0, 3)
    # Five views as invenio-stats writes them after the switch, and two of a record in no
    # community; one view of last month, which creates that month's index from our template.
    after = [
        invenio_rdm.event("view", f"{today}T00:01:0{n}", "wwwww-00001", "p-wwwww-00001", f"after-{n}") for n in range(5)
    ]
    after += [
        invenio_rdm.event("view", f"{today}T00:02:0{n}", "wwwww-00002", "p-wwwww-00002", f"other-{n}") for n in range(2)
    ]
    invenio_rdm.bulk(search, [(legacy_name, i, d) for i, d in after])
    old_id, old_doc = invenio_rdm.event("view", f"{last_month_day}T12:00:00", "wwwww-00001", "p-wwwww-00001", "old")
    old_index = f"{p}events-stats-record-view-{last_month_day[:7]}"
    invenio_rdm.bulk(search, [(old_index, old_id, old_doc)])
    assert "community_ids" in search.ok("GET", f"{old_index}/_mapping")[old_index]["mappings"]["properties"]
    late, views = community_views(today)
    assert (late["events_enriched"], views) == (8, 8)
    enriched = {h["_id"]: h["_source"] for h in search.search_all(f"{p}events-stats-record-view")}
    assert all(
        enriched[i]["community_ids"] == [C1] and enriched[i]["resource_type"]["id"] == "dataset" for i, _ in after[:5]
    )
    assert all(enriched[i]["community_ids"] == [] for i, _ in after[5:])
    assert enriched[old_id]["community_ids"] == [C1]
    assert community_views(last_month_day) == ({"indices": 2, "events_enriched": 0, "records_missing": 0}, 1)
    # Nothing is enriched twice; the event count is unchanged.
    assert search.count(f"{p}events-stats-record-view") == 3 + 7 + 1


def test_backfill_skips_additions_another_tool_recorded_under_other_ids(cli, search, index_prefix):
    """An instance that ran invenio-stats-dashboard has `added` events with generated ids:
    the backfill does not add a second one for that record and community."""
    p = index_prefix
    invenio_rdm.write(
        search,
        p,
        [
            invenio_rdm.record("bbbbb-00001", "2024-03-01T10:00:00", [C1]),
            invenio_rdm.record("bbbbb-00002", "2024-03-02T10:00:00", [C1]),
        ],
        [invenio_rdm.community(C1, "physics", True)],
    )
    from invenio_community_stats import _core

    search.ok(
        "PUT",
        f"_index_template/{p}stats-community-events-v1.0.0",
        json.loads(_core.index_template("stats-community-events-v1.0.0", p)),
    )
    foreign = {
        "record_id": "bbbbb-00001",
        "community_id": C1,
        "event_type": "added",
        "event_date": "2024-03-05T08:00:00",
        "timestamp": "2024-03-05T08:00:00",
        "is_deleted": False,
    }
    search.ok("PUT", f"{p}stats-community-events-2024/_doc/Xy3kq1?refresh=true", foreign)
    status = js(cli("community-events-status", "--json"))
    assert (status["events_created"], status["events_existing"]) == (3, 1)
    report = js(cli("generate-community-events", "--json"))
    assert (report["events_created"], report["events_existing"]) == (3, 1)
    pairs = defaultdict(int)
    for h in search.search_all(f"{p}stats-community-events"):
        pairs[(h["_source"]["record_id"], h["_source"]["community_id"], h["_source"]["event_type"])] += 1
    assert pairs == {
        ("bbbbb-00001", C1, "added"): 1,
        ("bbbbb-00001", "global", "added"): 1,
        ("bbbbb-00002", C1, "added"): 1,
        ("bbbbb-00002", "global", "added"): 1,
    }


def test_a_refused_search_names_its_root_cause(cli, search, index_prefix):
    """A records index whose `id` is a text field (not InvenioRDM's mapping) cannot be sorted
    on: the one-line error names OpenSearch's root cause, and no lost point in time is
    claimed."""
    p = index_prefix
    search.ok(
        "PUT",
        f"{p}rdmrecords-records-record-v7.0.0-1",
        {"aliases": {f"{p}rdmrecords-records": {}}, "mappings": {"properties": {"id": {"type": "text"}}}},
    )
    search.ok("PUT", f"{p}rdmrecords-records/_doc/r1?refresh=true", {"id": "r1", "created": "2024-01-01T00:00:00"})
    proc = cli("generate-community-events")
    assert proc.returncode == 1
    err = proc.stderr.strip().splitlines()
    assert "was lost" not in proc.stderr
    assert any("caused by illegal_argument_exception" in line and line.startswith("Error:") for line in err), (
        proc.stderr
    )
