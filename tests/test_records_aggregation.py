"""Records delta and snapshot ("added" basis) against the real node, with figures computed
from the records and community events the test wrote; plus status, clear-bookmarks and
destroy-indices."""

import json
import subprocess
import sys

from aggregation_fixture import install_templates
from helpers import js
from records_fixture import record, write
from test_aggregation import bookmark

RDELTA, RSNAP = "community-records-delta-added-agg", "community-records-snapshot-added-agg"
ALPHA = "aaaaaaaa-0000-4000-8000-000000000001"
D = "2025-03-20"  # "today" of the reference's records scenario


def day(offset):
    from datetime import date, timedelta

    return (date.fromisoformat(D) + timedelta(days=offset)).isoformat()


def rdocs(search, prefix, kind, community):
    field = "period_start" if kind == "delta" else "snapshot_date"
    hits = search.search_all(f"{prefix}stats-community-records-{kind}-added", {"term": {"community_id": community}})
    return {h["_source"][field][:10]: h["_source"] for h in hits}


def community_event(record_id, community, event_type, event_date, deleted_date=None):
    doc = {
        "record_id": record_id,
        "community_id": community,
        "event_type": event_type,
        "event_date": f"{event_date}T10:00:00",
        "is_deleted": deleted_date is not None,
        "timestamp": f"{event_date}T10:00:00",
        "updated_timestamp": f"{event_date}T10:00:00",
    }
    if deleted_date:
        doc["deleted_date"] = f"{deleted_date}T12:00:00"
    return doc


def write_community_events(search, prefix, events):
    lines = []
    for i, e in enumerate(events):
        lines += [
            json.dumps({"index": {"_index": f"{prefix}stats-community-events-{e['event_date'][:4]}", "_id": f"e{i}"}}),
            json.dumps(e),
        ]
    for start in range(0, len(lines), 20000):
        reply = search.bulk(("\n".join(lines[start : start + 20000]) + "\n").encode())
        assert not reply["errors"]
    search.request("POST", f"{prefix}stats-community-events-*/_refresh")


def owned(rec, user=1):
    rec["parent"]["access"] = {"owned_by": {"user": str(user)}}
    return rec


def test_restricted_files_count_as_files_and_free_text_licences_by_title(cli, search, index_prefix):
    """A public record with restricted or embargoed files is indexed as files: {enabled:
    true} without entries: it is a record with files (its count and bytes are unknown to
    the index); a licence without an id is counted under its title."""
    install_templates(search, index_prefix)
    created = f"{day(-2)}T09:00:00"
    free = {"rights": [{"title": {"en": "All rights reserved"}, "description": {"en": "Ask the author."}}]}
    records = [
        owned(record("o1", created, [ALPHA], files=2)),
        owned(record("x1", created, [ALPHA], files=2, file_access="restricted", metadata=free)),
        owned(record("x2", created, [ALPHA], files=1, file_access="embargoed")),
        owned(record("m1", created, [ALPHA], metadata=free)),
    ]
    write(search, index_prefix, records, [{"id": ALPHA, "slug": "alpha"}])
    assert records[1]["files"] == {"enabled": True}
    write_community_events(search, index_prefix, [community_event(r["id"], ALPHA, "added", day(-2)) for r in records])
    js(
        cli(
            "aggregate",
            "--community-id",
            "alpha",
            "--community-id",
            "global",
            "--aggregation-type",
            RDELTA,
            "--aggregation-type",
            RSNAP,
            "--start-date",
            day(-2),
            "--end-date",
            day(-2),
            "--json",
        )
    )
    opened = records[0]["files"]
    for community in ("global", ALPHA):
        t = rdocs(search, index_prefix, "delta", community)[day(-2)]
        assert t["records"]["added"] == {"metadata_only": 1, "with_files": 3}, community
        assert t["parents"]["added"] == {"metadata_only": 1, "with_files": 3}
        # What the index holds: the open record's files only.
        assert t["files"]["added"] == {"file_count": opened["count"], "data_volume": opened["totalbytes"]}
        access = {i["id"]: i["records"]["added"] for i in t["subcounts"]["access_statuses"]}
        assert access == {
            "open": {"metadata_only": 0, "with_files": 1},
            "restricted": {"metadata_only": 0, "with_files": 1},
            "embargoed": {"metadata_only": 0, "with_files": 1},
            "metadata-only": {"metadata_only": 1, "with_files": 0},
        }
        assert {i["id"]: i["records"]["added"]["with_files"] for i in t["subcounts"]["file_types"]} == {"pdf": 1}
        rights = {i["id"]: (i["label"], i["records"]["added"]) for i in t["subcounts"]["rights"]}
        assert rights == {"All rights reserved": ({"en": "All rights reserved"}, {"metadata_only": 1, "with_files": 1})}
        snap = rdocs(search, index_prefix, "snapshot", community)[day(-2)]
        assert snap["total_records"] == {"metadata_only": 1, "with_files": 3}


def test_records_scenario_global_by_creation_community_by_addition(cli, search, index_prefix):
    install_templates(search, index_prefix)
    records = [
        owned(record("r1", f"{day(-10)}T09:00:00", [ALPHA], files=1, deleted_at=f"{D}T12:00:00")),
        owned(record("r2", f"{day(-10)}T09:00:00", [ALPHA], files=2)),
        owned(record("r3", f"{day(-6)}T09:00:00", [ALPHA], files=1)),
        owned(record("r4", f"{day(-6)}T09:00:00", [ALPHA])),
    ]
    write(search, index_prefix, records, [{"id": ALPHA, "slug": "alpha"}])
    write_community_events(
        search,
        index_prefix,
        [
            community_event("r1", ALPHA, "added", D, deleted_date=D),
            community_event("r2", ALPHA, "added", D),
            community_event("r3", ALPHA, "added", D),
            community_event("r4", ALPHA, "added", D),
        ],
    )
    report = js(
        cli(
            "aggregate",
            "--community-id",
            "alpha",
            "--community-id",
            "global",
            "--aggregation-type",
            RDELTA,
            "--aggregation-type",
            RSNAP,
            "--end-date",
            D,
            "--json",
        )
    )
    assert report["errors"] == 0
    size = {r["id"]: sum(e["size"] for e in r["files"].get("entries", [])) for r in records}
    nfiles = {r["id"]: len(r["files"].get("entries", [])) for r in records}

    g = rdocs(search, index_prefix, "delta", "global")
    assert sorted(g) == [day(i) for i in range(-10, 1)]
    assert g[day(-10)]["records"]["added"] == {"metadata_only": 0, "with_files": 2}
    assert g[day(-10)]["parents"]["added"] == {"metadata_only": 0, "with_files": 2}
    assert g[day(-10)]["files"]["added"] == {
        "file_count": nfiles["r1"] + nfiles["r2"],
        "data_volume": size["r1"] + size["r2"],
    }
    assert g[day(-6)]["records"]["added"] == {"metadata_only": 1, "with_files": 1}
    assert g[D]["records"]["added"] == {"metadata_only": 0, "with_files": 0}
    assert g[D]["records"]["removed"] == {"metadata_only": 0, "with_files": 1}
    assert g[D]["files"]["removed"] == {"file_count": 1, "data_volume": size["r1"]}
    for d in (-9, -8, -7, -5, -4, -3, -2, -1):
        assert g[day(d)]["records"]["added"] == {"metadata_only": 0, "with_files": 0}

    c = rdocs(search, index_prefix, "delta", ALPHA)
    assert sorted(c) == [D]  # the community's first event is today
    t = c[D]
    assert t["records"]["added"] == {"metadata_only": 1, "with_files": 3}
    assert t["records"]["removed"] == {"metadata_only": 0, "with_files": 1}
    assert t["parents"]["added"] == {"metadata_only": 1, "with_files": 3}
    assert t["uploaders"] == 1
    assert t["files"]["added"] == {"file_count": 4, "data_volume": size["r1"] + size["r2"] + size["r3"]}
    access = {i["id"]: (i["label"], i["records"]["added"]) for i in t["subcounts"]["access_statuses"]}
    assert access == {
        "metadata-only": ("", {"metadata_only": 1, "with_files": 0}),
        "open": ("", {"metadata_only": 0, "with_files": 3}),
    }
    assert [
        (i["id"], i["records"]["added"]["with_files"], i["records"]["removed"]["with_files"])
        for i in t["subcounts"]["file_types"]
    ] == [("pdf", 3, 1)]
    funders = t["subcounts"]["funders"][0]
    assert (funders["id"], funders["label"], funders["records"]["added"]["with_files"]) == (
        "00k4n6c32",
        "European Commission",
        3,
    )

    # Snapshots: deleted records leave the totals.
    gs = rdocs(search, index_prefix, "snapshot", "global")
    assert gs[day(-10)]["total_records"] == {"metadata_only": 0, "with_files": 2}
    assert gs[D]["total_records"] == {"metadata_only": 1, "with_files": 2}
    assert gs[D]["total_files"] == {"file_count": nfiles["r2"] + nfiles["r3"], "data_volume": size["r2"] + size["r3"]}
    cs = rdocs(search, index_prefix, "snapshot", ALPHA)[D]
    assert cs["total_records"] == {"metadata_only": 1, "with_files": 2}
    assert {i["id"]: i["records"] for i in cs["subcounts"]["file_types"]} == {
        "pdf": {"metadata_only": 0, "with_files": 2}
    }
    assert bookmark(search, index_prefix, RDELTA, ALPHA) == f"{D}T00:00:00"
    assert bookmark(search, index_prefix, RSNAP, "global") == f"{D}T00:00:00"

    # Our documents index without error under the reference's strict templates.
    from records_fixture import reindex_under_reference_mapping

    for kind in ("delta", "snapshot"):
        errors, n = reindex_under_reference_mapping(
            search,
            f"{index_prefix}stats-community-records-{kind}-added",
            f"stats-community-records-{kind}-added-v1.0.0",
            f"{index_prefix}ref-records-{kind}",
        )
        assert errors == [] and n > 0


def test_quiet_days_old_records_removals_and_deletions_count(cli, search, index_prefix):
    install_templates(search, index_prefix)
    old = [owned(record(f"old{i}", "2023-01-01T00:00:00", [ALPHA], files=1)) for i in range(3)]
    old[2]["is_deleted"] = True
    old[2]["tombstone"] = {"removal_date": f"{day(3)}T08:00:00"}
    write(search, index_prefix, old, [{"id": ALPHA, "slug": "alpha"}])
    write_community_events(
        search,
        index_prefix,
        [
            community_event("old0", ALPHA, "added", day(-5)),
            community_event("old1", ALPHA, "added", day(-5)),
            community_event("old2", ALPHA, "added", day(-5), deleted_date=day(3)),
            community_event("old1", ALPHA, "removed", day(1)),
        ],
    )
    # The bookmarks reach D first; then come quiet days (no record created) with a removal
    # and a deletion of records created two years earlier.
    js(
        cli(
            "aggregate",
            "--community-id",
            "alpha",
            "--community-id",
            "global",
            "--aggregation-type",
            RDELTA,
            "--aggregation-type",
            RSNAP,
            "--start-date",
            day(-6),
            "--end-date",
            D,
            "--json",
        )
    )
    js(
        cli(
            "aggregate",
            "--community-id",
            "alpha",
            "--community-id",
            "global",
            "--aggregation-type",
            RDELTA,
            "--aggregation-type",
            RSNAP,
            "--end-date",
            day(5),
            "--json",
        )
    )
    c = rdocs(search, index_prefix, "delta", ALPHA)
    assert c[day(-5)]["records"]["added"]["with_files"] == 3  # records created two years ago, added on a quiet day
    assert c[day(1)]["records"]["removed"]["with_files"] == 1  # a removal day...
    assert c[day(1)]["records"]["added"]["with_files"] == 0  # ...is not an addition
    assert c[day(3)]["records"]["removed"]["with_files"] == 1  # a deletion-only day
    g = rdocs(search, index_prefix, "delta", "global")
    assert g[day(3)]["records"]["removed"]["with_files"] == 1
    assert sum(d["records"]["added"]["with_files"] for d in g.values()) == 0  # created long before the range
    snap = rdocs(search, index_prefix, "snapshot", ALPHA)
    assert snap[day(5)]["total_records"]["with_files"] == 1
    # The snapshot honours a requested start: written from there, cumulative from the start.
    r = js(
        cli(
            "aggregate",
            "--community-id",
            "alpha",
            "--aggregation-type",
            RSNAP,
            "--start-date",
            day(2),
            "--end-date",
            day(4),
            "--json",
        )
    )
    assert (r["aggregators"][0]["communities"][0]["first_day"], r["aggregators"][0]["communities"][0]["last_day"]) == (
        day(2),
        day(4),
    )
    assert rdocs(search, index_prefix, "snapshot", ALPHA)[day(2)]["total_records"]["with_files"] == 2


def test_more_than_10000_records_added_in_a_day(cli, search, index_prefix):
    install_templates(search, index_prefix)
    n = 10_050
    write(
        search,
        index_prefix,
        [record(f"m{i:05d}", "2024-01-01T00:00:00", [ALPHA]) for i in range(n)],
        [{"id": ALPHA, "slug": "alpha"}],
    )
    write_community_events(search, index_prefix, [community_event(f"m{i:05d}", ALPHA, "added", D) for i in range(n)])
    js(cli("aggregate", "--community-id", "alpha", "--aggregation-type", RDELTA, "--end-date", D, "--json"))
    assert rdocs(search, index_prefix, "delta", ALPHA)[D]["records"]["added"] == {"metadata_only": n, "with_files": 0}


def test_opt_in_only_enabled_communities_and_global(cli, search, index_prefix):
    install_templates(search, index_prefix)
    ids = [f"cccccccc-0000-4000-8000-00000000000{i}" for i in (1, 2, 3)]
    comms = [
        {"id": ids[0], "slug": "none", "custom_fields": {}},
        {"id": ids[1], "slug": "off", "custom_fields": {"stats:dashboard_enabled": False}},
        {"id": ids[2], "slug": "on", "custom_fields": {"stats:dashboard_enabled": True}},
    ]
    write(search, index_prefix, [record("o1", f"{D}T01:00:00", ids)], comms)
    write_community_events(search, index_prefix, [community_event("o1", c, "added", D) for c in ids])
    report = js(cli("aggregate", "--aggregation-type", RDELTA, "--start-date", D, "--end-date", D, "--json"))
    assert report["communities"] == [ids[2], "global"]
    hits = search.search_all(f"{index_prefix}stats-community-records-delta-added")
    assert sorted(h["_source"]["community_id"] for h in hits) == sorted([ids[2], "global"])


def test_status_clear_bookmarks_and_destroy_indices_are_prefix_aware(cli, cli_env, search, index_prefix):
    install_templates(search, index_prefix)
    write(
        search,
        index_prefix,
        [owned(record("s1", f"{day(-2)}T01:00:00", [ALPHA], files=1))],
        [{"id": ALPHA, "slug": "alpha"}],
    )
    write_community_events(search, index_prefix, [community_event("s1", ALPHA, "added", day(-2))])
    js(cli("aggregate", "--community-id", "alpha", "--community-id", "global", "--end-date", D, "--json"))
    rows = js(cli("status", "--json"))
    by = {(r["community_id"], r["aggregator"]): r for r in rows}
    assert by[("global", RDELTA)]["documents"] == 3 and by[("global", RDELTA)]["bookmark"] == D
    assert by[(ALPHA, RSNAP)]["first_day"] == day(-2) and by[(ALPHA, RSNAP)]["completeness"] == 1.0
    assert by[("global", "community-usage-delta-agg")]["documents"] == 0
    assert [r["community_id"] for r in js(cli("status", "--community-id", "global", "--json"))] == ["global"] * 4
    assert "global" in cli("status").stdout

    # clear-bookmarks can address global; it needs a selection.
    assert cli("clear-bookmarks").returncode == 2
    assert js(cli("clear-bookmarks", "--community-id", "global", "--json"))["deleted"] == 2
    assert bookmark(search, index_prefix, RDELTA, "global") is None
    assert bookmark(search, index_prefix, RDELTA, ALPHA) == f"{D}T00:00:00"

    # Another tenant's index whose name starts like ours must survive destroy-indices.
    other = f"{index_prefix}other-stats-community-records-delta-added-2025"
    search.ok("PUT", other)
    ours = search.indices(f"{index_prefix}stats-community-records-*")
    assert ours
    dry = js(cli("destroy-indices", "--dry-run", "--json"))
    assert other not in dry["would_delete"] and set(ours) <= set(dry["would_delete"])
    declined = subprocess.run(
        [sys.executable, "-m", "invenio_community_stats", "destroy-indices"],
        input="n\n",
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert declined.returncode == 1 and "nothing deleted" in declined.stderr
    assert search.indices(f"{index_prefix}stats-community-records-*") == ours
    proc = cli("destroy-indices", "--yes-i-know", "--json")
    assert proc.returncode == 0, proc.stderr
    assert search.indices(f"{index_prefix}stats-community-records-*") == []
    assert search.indices(f"{index_prefix}stats-bookmarks-community") == []
    assert search.indices(other) == [other]
    assert search.indices(f"{index_prefix}rdmrecords-records*") != []
    assert search.indices(f"{index_prefix}stats-community-events-*") != []  # only with --include-community-events
