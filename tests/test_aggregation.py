"""Aggregation (usage delta, usage snapshot) against the real node: the reference's usage
scenario with figures computed independently from the events the test wrote, bookmarks,
the lock, read, and one test per bug of the reference we must not repeat."""

import json
import signal
import subprocess
import sys
from collections import defaultdict

import pytest

import reference_facts
from aggregation_fixture import (
    COMMUNITY_A,
    COMMUNITY_B,
    expected_daily,
    install_templates,
    scenario_events,
    write_events,
    write_scenario,
)
from helpers import js

DELTA, SNAPSHOT = "community-usage-delta-agg", "community-usage-snapshot-agg"
METRICS = {
    "view": {"total_events", "unique_visitors", "unique_records", "unique_parents"},
    "download": {"total_events", "unique_visitors", "unique_records", "unique_parents", "unique_files", "total_volume"},
}


def docs(search, prefix, kind, community):
    hits = search.search_all(f"{prefix}stats-community-usage-{kind}", {"term": {"community_id": community}})
    field = "period_start" if kind == "delta" else "snapshot_date"
    return {h["_source"][field][:10]: h["_source"] for h in hits}


def bookmark(search, prefix, aggregator, community):
    status, reply = search.request("GET", f"{prefix}stats-bookmarks-community/_doc/{aggregator}_{community}")
    return reply["_source"]["date"] if status == 200 else None


@pytest.fixture
def scenario(search, index_prefix):
    return write_scenario(search, index_prefix)


def test_usage_scenario_exact_figures(cli, search, index_prefix, scenario):
    report = js(
        cli("aggregate", "--community-id", "alpha", "--community-id", "global", "--end-date", "2025-06-16", "--json")
    )
    assert [a["aggregator"] for a in report["aggregators"]] == [
        DELTA,
        "community-records-delta-added-agg",
        "community-records-snapshot-added-agg",
        SNAPSHOT,
    ]
    assert report["errors"] == 0
    assert report["communities"] == [COMMUNITY_A, "global"]  # the slug resolved
    days = [f"2025-06-{d:02d}" for d in range(3, 17)]  # the first event (06-03) to the end date
    for community in (COMMUNITY_A, "global"):
        expected = expected_daily(scenario, community)
        deltas = docs(search, index_prefix, "delta", community)
        assert sorted(deltas) == days
        for day in days:
            got = deltas[day]["totals"]
            want = expected.get(day, {"view": {}, "download": {}})
            for kind in ("view", "download"):
                assert set(got[kind]) == METRICS[kind]
                for metric, value in got[kind].items():
                    assert value == want[kind].get(metric, 0), (community, day, kind, metric)
        # The events at 23:59:59 and 00:00:00 count on their own day.
        assert deltas["2025-06-10"]["totals"]["view"]["total_events"] == expected["2025-06-10"]["view"]["total_events"]
        # Snapshots: cumulative sums of the deltas, day by day.
        snaps = docs(search, index_prefix, "snapshot", community)
        assert sorted(snaps) == days
        running = defaultdict(int)
        for day in days:
            for kind in ("view", "download"):
                for metric, value in deltas[day]["totals"][kind].items():
                    running[(kind, metric)] += value
                    assert snaps[day]["totals"][kind][metric] == running[(kind, metric)], (community, day, kind, metric)
        assert bookmark(search, index_prefix, DELTA, community) == "2025-06-16T00:00:00"
        assert bookmark(search, index_prefix, SNAPSHOT, community) == "2025-06-16T00:00:00"
    # Exact sums over the whole timeline (community vs global).
    last_a = docs(search, index_prefix, "snapshot", COMMUNITY_A)["2025-06-16"]["totals"]
    last_g = docs(search, index_prefix, "snapshot", "global")["2025-06-16"]["totals"]
    community_events = [e for e in scenario if COMMUNITY_A in e[2]["community_ids"]]
    assert last_a["view"]["total_events"] == sum(1 for k, _, _ in community_events if k == "view") == 86
    assert last_a["download"]["total_events"] == 60
    assert last_a["download"]["total_volume"] == sum(d["size"] for k, _, d in community_events if k == "download")
    assert last_g["view"]["total_events"] == sum(1 for k, _, _ in scenario if k == "view") == 126
    assert last_g["download"]["total_volume"] == sum(d["size"] for k, _, d in scenario if k == "download")
    for kind in ("view", "download"):
        for metric, value in last_a[kind].items():
            assert last_g[kind][metric] >= value


def test_subcounts_funders_labels_and_top_lists(cli, search, index_prefix, scenario):
    js(cli("aggregate", "--community-id", COMMUNITY_A, "--end-date", "2025-06-16", "--json"))
    deltas = docs(search, index_prefix, "delta", COMMUNITY_A)
    funder_views = defaultdict(int)
    rt_views = defaultdict(int)
    for d in deltas.values():
        for item in d["subcounts"]["funders"]:
            funder_views[(item["id"], item["label"])] += item["view"]["total_events"]
        for item in d["subcounts"]["resource_types"]:
            rt_views[(item["id"], item["label"]["en"])] += item["view"]["total_events"]
    views = [d for k, _, d in scenario if k == "view" and COMMUNITY_A in d["community_ids"]]
    # Funders are filled (the reference's are always empty), with and without an id.
    assert funder_views == {
        ("f1", "European Commission"): sum(1 for d in views if d["recid"] == "r1"),
        ("Local Trust", "Local Trust"): sum(1 for d in views if d["recid"] == "r2"),
    }
    assert rt_views == {
        ("dataset", "Dataset"): sum(1 for d in views if d["recid"] in ("r1", "r3")),
        ("image", "Image"): sum(1 for d in views if d["recid"] == "r2"),
        ("publication", "Publication"): sum(1 for d in views if d["recid"] == "r4"),
    }
    last = docs(search, index_prefix, "snapshot", COMMUNITY_A)["2025-06-16"]["subcounts"]
    by_view = {i["id"]: i["view"]["total_events"] for i in last["funders"]["by_view"]}
    assert by_view == {
        "f1": funder_views[("f1", "European Commission")],
        "Local Trust": funder_views[("Local Trust", "Local Trust")],
    }
    assert [i["id"] for i in last["funders"]["by_view"]] == sorted(by_view, key=lambda k: (-by_view[k], k))
    # "all" kinds list every item with its cumulative figures.
    assert {i["id"]: i["view"]["total_events"] for i in last["resource_types"]} == {
        k[0]: v for k, v in rt_views.items()
    }
    # Documents index without error under the reference's strict templates.
    for kind in ("delta", "snapshot"):
        target = f"{index_prefix}ref-stats-community-usage-{kind}-2025"
        search.ok("PUT", target, {"mappings": reference_facts.mappings(f"stats-community-usage-{kind}-v1.0.0")})
        lines = []
        for source in docs(search, index_prefix, kind, COMMUNITY_A).values():
            lines += [json.dumps({"index": {"_index": target}}), json.dumps(source)]
        reply = search.bulk(("\n".join(lines) + "\n").encode())
        assert not reply["errors"], [i for i in reply["items"] if "error" in i["index"]][:2]


def test_opt_in_selects_enabled_communities_and_global(cli, search, index_prefix, scenario):
    report = js(
        cli(
            "aggregate", "--aggregation-type", DELTA, "--start-date", "2025-06-15", "--end-date", "2025-06-16", "--json"
        )
    )
    assert report["communities"] == [COMMUNITY_A, "global"]
    assert search.count(f"{index_prefix}stats-community-usage-delta", {"term": {"community_id": COMMUNITY_B}}) == 0
    assert search.count(f"{index_prefix}stats-community-usage-delta") == 4


def test_more_than_10000_events_in_a_day(cli, search, index_prefix):
    install_templates(search, index_prefix)
    events = [
        (
            "view",
            f"e{i}",
            {
                "timestamp": f"2025-03-01T{(i // 3600) % 24:02d}:{(i // 60) % 60:02d}:{i % 60:02d}",
                "recid": f"r{i % 50}",
                "parent_recid": f"p{i % 50}",
                "visitor_id": f"v{i % 700}",
                "community_ids": [],
            },
        )
        for i in range(10_001)
    ]
    write_events(search, index_prefix, events)
    report = js(cli("aggregate", "--community-id", "global", "--aggregation-type", DELTA, "--json"))
    assert report["aggregators"][0]["communities"][0]["days_written"] >= 1
    day = docs(search, index_prefix, "delta", "global")["2025-03-01"]["totals"]["view"]
    assert day["total_events"] == 10_001
    assert day["unique_records"] == 50 and day["unique_visitors"] == 700


def test_start_date_wins_over_bookmark_and_ignore_bookmark(cli, search, index_prefix, scenario):
    js(cli("aggregate", "--community-id", "global", "--end-date", "2025-06-16", "--json"))
    assert bookmark(search, index_prefix, DELTA, "global") == "2025-06-16T00:00:00"
    # --start-date is honoured although a bookmark exists; --no-update-bookmark keeps it.
    r = js(
        cli(
            "aggregate",
            "--community-id",
            "global",
            "--start-date",
            "2025-06-10",
            "--end-date",
            "2025-06-12",
            "--no-update-bookmark",
            "--json",
        )
    )
    c = r["aggregators"][0]["communities"][0]
    assert (c["first_day"], c["last_day"], c["days_written"]) == ("2025-06-10", "2025-06-12", 3)
    assert bookmark(search, index_prefix, DELTA, "global") == "2025-06-16T00:00:00"
    # Without a start date the run resumes at the bookmark (the last day is redone).
    r = js(cli("aggregate", "--community-id", "global", "--end-date", "2025-06-16", "--json"))
    assert r["aggregators"][0]["communities"][0]["first_day"] == "2025-06-16"
    # --ignore-bookmark without a start date starts at the first event.
    r = js(cli("aggregate", "--community-id", "global", "--end-date", "2025-06-16", "--ignore-bookmark", "--json"))
    assert r["aggregators"][0]["communities"][0]["first_day"] == "2025-06-03"
    # Snapshots after the partial re-runs are still the cumulative sums.
    snaps = docs(search, index_prefix, "snapshot", "global")
    assert snaps["2025-06-16"]["totals"]["view"]["total_events"] == 126


def test_incremental_snapshot_matches_a_full_rebuild(cli, search, index_prefix, scenario, cli_env):
    env = dict(cli_env, INVENIO_COMMUNITY_STATS_CATCHUP_DAYS="5")
    first = cli("aggregate", "--community-id", "global", "--end-date", "2025-06-16", env=env)
    assert first.returncode == 0, first.stderr
    assert "catch-up limit" in first.stderr
    assert bookmark(search, index_prefix, DELTA, "global") == "2025-06-07T00:00:00"
    for _ in range(3):  # each run continues from its bookmark, 5 days at a time
        assert cli("aggregate", "--community-id", "global", "--end-date", "2025-06-16", env=env).returncode == 0
    assert bookmark(search, index_prefix, SNAPSHOT, "global") == "2025-06-16T00:00:00"
    incremental = docs(search, index_prefix, "snapshot", "global")
    js(
        cli(
            "aggregate",
            "--community-id",
            "global",
            "--aggregation-type",
            SNAPSHOT,
            "--ignore-bookmark",
            "--end-date",
            "2025-06-16",
            "--json",
        )
    )
    rebuilt = docs(search, index_prefix, "snapshot", "global")
    assert sorted(incremental) == sorted(rebuilt)
    for day in rebuilt:
        assert incremental[day]["totals"] == rebuilt[day]["totals"], day
        assert incremental[day]["subcounts"] == rebuilt[day]["subcounts"], day


def test_a_delta_gap_stops_only_that_community(cli, search, index_prefix, scenario):
    js(
        cli(
            "aggregate",
            "--community-id",
            "alpha",
            "--community-id",
            "global",
            "--aggregation-type",
            DELTA,
            "--end-date",
            "2025-06-16",
            "--json",
        )
    )
    search.ok("DELETE", f"{index_prefix}stats-community-usage-delta-2025/_doc/{COMMUNITY_A}-2025-06-09?refresh=true")
    proc = cli(
        "aggregate",
        "--community-id",
        "alpha",
        "--community-id",
        "global",
        "--aggregation-type",
        SNAPSHOT,
        "--end-date",
        "2025-06-16",
        "--json",
    )
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    by_community = {c["community_id"]: c for c in report["aggregators"][0]["communities"]}
    assert by_community[COMMUNITY_A]["last_day"] == "2025-06-08"
    assert "2025-06-09" in by_community[COMMUNITY_A]["error_details"][0]
    assert by_community["global"]["errors"] == 0 and by_community["global"]["last_day"] == "2025-06-16"
    assert bookmark(search, index_prefix, SNAPSHOT, COMMUNITY_A) == "2025-06-08T00:00:00"


def test_a_rejected_document_does_not_lose_the_others(cli, search, index_prefix, scenario):
    # 200 more views on 06-09; the 2025 delta index exists with a mapping that rejects a day
    # with more than 127 views (a byte), i.e. that day's document only.
    busy = [
        (
            "view",
            f"busy-{i}",
            {
                "timestamp": f"2025-06-09T12:{i // 60:02d}:{i % 60:02d}",
                "recid": "r5",
                "parent_recid": "p5",
                "visitor_id": f"b{i}",
                "community_ids": [],
            },
        )
        for i in range(200)
    ]
    write_events(search, index_prefix, busy)
    search.ok(
        "PUT",
        f"{index_prefix}stats-community-usage-delta-2025",
        {
            "aliases": {f"{index_prefix}stats-community-usage-delta": {}},
            "mappings": {
                "properties": {
                    "period_start": {"type": "date", "format": "strict_date_hour_minute_second"},
                    "period_end": {"type": "date", "format": "strict_date_hour_minute_second"},
                    "totals": {"properties": {"view": {"properties": {"total_events": {"type": "byte"}}}}},
                }
            },
        },
    )
    proc = cli(
        "aggregate", "--community-id", "global", "--aggregation-type", DELTA, "--end-date", "2025-06-16", "--json"
    )
    assert proc.returncode == 1
    c = json.loads(proc.stdout)["aggregators"][0]["communities"][0]
    assert c["errors"] == 1 and "total_events" in c["error_details"][0]
    written = docs(search, index_prefix, "delta", "global")
    assert set(written) == {f"2025-06-{d:02d}" for d in range(3, 17)} - {"2025-06-09"}
    assert bookmark(search, index_prefix, DELTA, "global") is None  # not moved past a failed day


def test_missing_event_indices_do_not_stop_the_run(cli, search, index_prefix):
    install_templates(search, index_prefix)
    events = [e for e in scenario_events() if e[0] == "view"]
    write_events(search, index_prefix, events, kinds=("view",))  # no download index at all
    report = js(cli("aggregate", "--community-id", "global", "--end-date", "2025-06-16", "--json"))
    assert report["errors"] == 0
    snaps = docs(search, index_prefix, "snapshot", "global")
    assert snaps["2025-06-16"]["totals"]["view"]["total_events"] == len(events)
    assert snaps["2025-06-16"]["totals"]["download"]["total_events"] == 0


def test_no_events_at_all_is_reported_not_an_error(cli, search, index_prefix):
    report = js(cli("aggregate", "--community-id", "global", "--json"))
    assert [c["note"] for a in report["aggregators"] for c in a["communities"]] == [
        "no usage events",
        "no records",
        "no records deltas",
        "no usage deltas",
    ]
    # A prefix with nothing to aggregate (a typo?) gets nothing created under it.
    assert search.indices(f"{index_prefix}*") == []
    status, templates = search.request("GET", f"_index_template/{index_prefix}*")
    assert status == 404 or templates.get("index_templates") == []


def test_lock_blocks_a_second_run_until_cleared(cli, search, index_prefix, scenario):
    js(
        cli(
            "aggregate",
            "--community-id",
            "global",
            "--aggregation-type",
            DELTA,
            "--start-date",
            "2025-06-16",
            "--end-date",
            "2025-06-16",
            "--json",
        )
    )  # creates the lock index; the run released its lock
    assert search.request("GET", f"{index_prefix}stats-community-locks/_doc/aggregation")[0] == 404
    far = 4_102_444_800_000  # 2100-01-01
    search.ok(
        "PUT",
        f"{index_prefix}stats-community-locks/_doc/aggregation?refresh=true",
        {"owner": "otherhost:4242", "pid": 4242, "acquired": "2025-06-16T10:00:00", "expires": far},
    )
    blocked = cli("aggregate", "--community-id", "global", "--end-date", "2025-06-16")
    assert blocked.returncode == 1
    errors = [line for line in blocked.stderr.splitlines() if line.startswith("Error:")]
    assert (
        len(errors) == 1
        and "another aggregation is running (host:PID otherhost:4242 since 2025-06-16T10:00:00" in errors[0]
    )
    cleared = cli("clear-lock")
    assert cleared.returncode == 0 and "otherhost:4242" in cleared.stdout
    assert cli("aggregate", "--community-id", "global", "--end-date", "2025-06-16").returncode == 0
    # An expired lock (a crashed run) is taken over.
    search.ok(
        "PUT",
        f"{index_prefix}stats-community-locks/_doc/aggregation?refresh=true",
        {"owner": "crashed:1", "pid": 1, "acquired": "2025-06-16T10:00:00", "expires": 1000},
    )
    assert cli("aggregate", "--community-id", "global", "--end-date", "2025-06-16").returncode == 0


def test_read_lists_documents_in_date_order(cli, index_prefix, scenario):
    js(cli("aggregate", "--community-id", "alpha", "--end-date", "2025-06-16", "--json"))
    result = js(
        cli("read", "--community-id", "alpha", "--start-date", "2025-06-03", "--end-date", "2025-06-16", "--json")
    )
    assert result["community_id"] == COMMUNITY_A
    assert [d["period_start"][:10] for d in result["usage_deltas"]] == [f"2025-06-{d:02d}" for d in range(3, 17)]
    assert len(result["usage_snapshots"]) == 14
    assert result["record_deltas_added"] == [] and result["record_snapshots_added"] == []
    text = cli("read", "--community-id", "alpha", "--start-date", "2025-06-16", "--end-date", "2025-06-16")
    assert text.returncode == 0 and "usage_deltas: 1 documents" in text.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--start-date", "2025-13-01"], "--start-date"),
        (["--community-id", "global", "--start-date", "0000-01-01", "--end-date", "0000-01-03"], "out of range"),
        (["--end-date", "1899-12-31"], "years 1900 to 9999"),
        (["--start-date", "2025-06-10", "--end-date", "2025-06-01"], "before"),
        (["--community-id", "no-such-slug"], "unknown community"),
        (["--aggregation-type", "community-records-delta-created-agg"], "aggregation-type"),
    ],
)
def test_bad_input_one_line_nothing_written(cli, search, index_prefix, scenario, args, message):
    proc = cli("aggregate", *args)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and proc.stderr.strip().count("\n") == 0
    assert search.indices(f"{index_prefix}stats-*") == []


def test_a_state_poisoned_by_year_zero_is_repaired_by_clear_bookmarks_and_destroy_indices(cli, search, index_prefix):
    """An older version accepted year 0000 and wrote `...-0000` indices and a bookmark there;
    clear-bookmarks and destroy-indices remove them, and global runs again."""
    install_templates(search, index_prefix)
    p = index_prefix
    write_events(search, p, [e for e in scenario_events() if e[0] == "view"][:3], kinds=("view",))
    # Our bookmark index, as an older run made it.
    js(cli("aggregate", "--community-id", "global", "--start-date", "2025-06-04", "--end-date", "2025-06-04", "--json"))
    search.ok(
        "PUT",
        f"{p}stats-community-usage-delta-0000/_doc/global-0000-01-03?refresh=true",
        {"community_id": "global", "period_start": "0000-01-03T00:00:00", "period_end": "0000-01-03T23:59:59"},
    )
    search.ok(
        "PUT",
        f"{p}stats-bookmarks-community/_doc/community-usage-delta-agg_global?refresh=true",
        {"date": "0000-01-03T00:00:00", "aggregation_type": "community-usage-delta-agg", "community_id": "global"},
    )
    assert js(cli("clear-bookmarks", "--community-id", "global", "--json"))["deleted"] >= 1
    bookmark_path = f"{p}stats-bookmarks-community/_doc/community-usage-delta-agg_global"
    assert search.request("GET", bookmark_path)[0] == 404
    deleted = js(cli("destroy-indices", "--yes-i-know", "--json"))["deleted"]
    assert f"{p}stats-community-usage-delta-0000" in deleted
    assert search.indices(f"{p}stats-community-usage-delta-*") == []
    report = js(cli("aggregate", "--community-id", "global", "--json"))
    assert report["errors"] == 0


def _long_history(search, prefix, cli_env):
    """1,000 days with three views a day in seven communities (and so global): several
    seconds of work, long enough to stop part-way (each week of a community is one read of
    its events, each day two documents). Returns (ids, all_days, aggregate args, env)."""
    install_templates(search, prefix)
    communities = ["c-one", "c-two", "c-three", "c-four", "c-five", "c-six", "c-seven"]
    all_days = _days("2020-01-01", 1000)
    events = [
        (
            "view",
            f"y{i}",
            {
                "timestamp": f"{day}T{h:02d}:00:00",
                "recid": f"r{h}",
                "parent_recid": f"p{h}",
                "visitor_id": f"v{h}",
                "community_ids": communities,
            },
        )
        for i, (day, h) in enumerate((d, h) for d in all_days for h in range(3))
    ]
    write_events(search, prefix, events, kinds=("view",))
    search.ok(
        "PUT",
        f"{prefix}communities",
        {"mappings": {"properties": {"id": {"type": "keyword"}, "slug": {"type": "keyword"}}}},
    )
    for c in communities:
        search.ok("PUT", f"{prefix}communities/_doc/{c}?refresh=true", {"id": c, "slug": f"slug-{c}"})
    ids = ["global", *communities]
    args = [a for c in ids for a in ("--community-id", c)] + ["--end-date", all_days[-1]]
    env = dict(cli_env, INVENIO_COMMUNITY_STATS_CATCHUP_DAYS=str(len(all_days)))
    return ids, all_days, args, env


def test_background_aggregation_progress_cancel_and_resume(cli, cli_env, search, index_prefix, tmp_path):
    from invenio_community_stats import processes

    from conftest import wait_for

    ids, all_days, args, env = _long_history(search, index_prefix, cli_env)
    n_days = len(all_days)
    pid_dir = str(tmp_path / "run")
    proc = cli("aggregate-background", *args, "--pid-dir", pid_dir, env=env)
    assert proc.returncode == 0, proc.stderr
    status = wait_for(lambda: (s := processes.status("aggregation", pid_dir))["processed"] >= 20 and s, timeout=60)
    assert status and status["state"] == "running", status
    assert status["total"] >= len(ids) * n_days and status["current_task"]
    result = processes.cancel("aggregation", pid_dir, timeout=30)
    assert result["outcome"] == "graceful" and result["state"] == "cancelled", result
    assert result["seconds"] < 2.0, result
    final = processes.status("aggregation", pid_dir)
    assert final["processed"] < 2 * len(ids) * n_days  # stopped part-way
    # Every bookmark names the last day written for its aggregator and community: nothing
    # after it is claimed, nothing before it is missing.
    for kind, aggregator in (("delta", DELTA), ("snapshot", SNAPSHOT)):
        for c in ids:
            written = docs(search, index_prefix, kind, c)
            mark = bookmark(search, index_prefix, aggregator, c)
            if written:
                assert mark is not None and mark[:10] == max(written), (kind, c)
                assert sorted(written) == _days("2020-01-01", len(written)), (kind, c)
            else:
                assert mark is None, (kind, c)
    # The lock was released by the cancelled run; a re-run continues from the bookmarks.
    report = js(cli("aggregate", *args, "--json", env=env))
    assert report["errors"] == 0 and not report.get("incomplete"), report
    for c in ids:
        deltas = docs(search, index_prefix, "delta", c)
        assert sorted(deltas) == all_days
        assert all(d["totals"]["view"]["total_events"] == 3 for d in deltas.values())
        assert docs(search, index_prefix, "snapshot", c)[all_days[-1]]["totals"]["view"]["total_events"] == 3 * n_days


def _days(first, n):
    from datetime import date, timedelta

    start = date.fromisoformat(first)
    return [(start + timedelta(days=i)).isoformat() for i in range(n)]


def test_sigterm_stops_a_foreground_run_cleanly(cli, cli_env, search, index_prefix):
    """`kill <pid>` of a foreground `aggregate` acts like Ctrl-C: the day in hand is finished,
    the lock is released (a re-run needs no clear-lock), exit code 130."""
    from conftest import wait_for

    ids, all_days, args, env = _long_history(search, index_prefix, cli_env)
    n_days = len(all_days)
    proc = subprocess.Popen(
        [sys.executable, "-m", "invenio_community_stats", "aggregate", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def deltas_written():
        # The index may exist before its shard is started: not ready yet counts as none.
        pattern = f"{index_prefix}stats-community-usage-delta-*"
        search.request("POST", f"{pattern}/_refresh?ignore_unavailable=true&allow_no_indices=true")
        status, reply = search.request("POST", f"{pattern}/_count?ignore_unavailable=true&allow_no_indices=true")
        return status == 200 and reply["count"] > 0

    started = wait_for(lambda: proc.poll() is not None or deltas_written(), timeout=60)
    assert started and proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Cancelled: stopped on request (SIGTERM)" in err
    assert search.count(f"{index_prefix}stats-community-locks") == 0
    # Stopped part-way: the snapshots (written after the deltas) are not all there.
    assert search.count(f"{index_prefix}stats-community-usage-snapshot-*") < len(ids) * n_days
    report = js(cli("aggregate", *args, "--json", env=env))
    assert report["errors"] == 0 and not report.get("incomplete"), report
    for c in ids:
        assert sorted(docs(search, index_prefix, "delta", c)) == all_days
