"""Faults where they happen: a job killed (SIGKILL) right after each request that changes the
cluster, through the loopback fault proxy, then run again: the re-run must end exact (every
event once) and unstuck (done, nothing left behind)."""

import signal
import subprocess
import sys
from datetime import datetime, timezone

import pytest
from fault_proxy import FaultProxy

import invenio_rdm
from helpers import ids, js

C1 = "11111111-1111-4111-a111-111111111111"

# The requests of the live month's switchover that change the cluster, in order:
# (name, method, path pattern, text in the body, occurrence).
SWITCHOVER_STEPS = [
    ("reroute pipeline created", "PUT", r"/_ingest/pipeline/", None, 1),
    ("source reroutes its writes", "PUT", r"/_settings", "default_pipeline", 1),
    ("source write-blocked", "PUT", r"/_settings", '"write":true', 1),
    ("backup cloned", "POST", r"/_clone/", None, 1),
    ("backup hardened", "PUT", r"-backup/_settings", None, 1),
    ("atomic swap", "POST", r"/_aliases", "remove_index", 1),
    ("reroute pipeline deleted", "DELETE", r"/_ingest/pipeline/", None, 1),
]


def cli_args(url, prefix, *args):
    return [sys.executable, "-m", "invenio_community_stats", "--search-host", url, "--index-prefix", prefix, *args]


def migrate_view_through(proxy, prefix, env):
    """``migrate-events --event-types view`` in batches of 10, against the proxy (finished run)."""
    return subprocess.run(
        cli_args(proxy.url, prefix, "migrate-events", "--event-types", "view", "--batch-size", "10", "--json"),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def live_month(search, prefix, n=40):
    """Records and `n` views of the current month, as invenio-stats wrote them."""
    now = datetime.now(timezone.utc)
    day = now.strftime("%Y-%m-%d")
    invenio_rdm.write(
        search,
        prefix,
        [invenio_rdm.record("fffff-00001", "2024-01-01T00:00:00", [C1])],
        [invenio_rdm.community(C1, "physics", True)],
    )
    events = [
        invenio_rdm.event("view", f"{day}T00:{k // 60:02d}:{k % 60:02d}", "fffff-00001", "p-fffff-00001", f"v{k}")
        for k in range(n)
    ]
    invenio_rdm.bulk(search, [(invenio_rdm.legacy_index(prefix, "view", day), i, d) for i, d in events])
    return invenio_rdm.legacy_index(prefix, "view", day), sorted(i for i, _ in events)


@pytest.mark.parametrize("step", SWITCHOVER_STEPS, ids=[s[0] for s in SWITCHOVER_STEPS])
def test_a_kill_after_each_switchover_step_is_finished_exactly_by_a_rerun(
    cli_env, cli, search, search_url, index_prefix, step
):
    name, method, path, body, nth = step
    legacy_name, expected = live_month(search, index_prefix)
    target = f"{legacy_name}-v2.0.0"
    with FaultProxy(search_url) as proxy:
        job = subprocess.Popen(
            cli_args(proxy.url, index_prefix, "migrate-events", "--event-types", "view"),
            env=cli_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        proxy.arm(method, path, body_contains=body, nth=nth, do="kill", pid=job.pid)
        out, err = job.communicate(timeout=300)
    assert proxy.fired.is_set(), f"the step {name!r} was never requested: {proxy.requests}"
    assert job.returncode == -signal.SIGKILL
    # The re-run finishes the month: done, switched, every event once, nothing left behind.
    report = js(cli("migrate-events", "--event-types", "view", "--json"))
    (month,) = report["months"]
    assert month["state"] == "done" and month["switched"], month
    assert ids(search, target) == expected
    assert search.count(f"{index_prefix}events-stats-record-view") == len(expected)
    status, aliases = search.request("GET", f"_alias/{legacy_name}")
    assert status == 200 and list(aliases) == [target]
    assert search.request("GET", f"_ingest/pipeline/{target}-reroute")[0] == 404
    backup = f"{legacy_name}-backup"
    assert ids(search, backup) == expected
    settings = search.ok("GET", f"{backup}/_settings")[backup]["settings"]["index"]
    assert settings["blocks"]["write"] == "true" and settings.get("default_pipeline") == "_none"
    assert search.ok("GET", f"{backup}/_alias")[backup]["aliases"] == {}
    (row,) = js(cli("migration-status", "--event-types", "view", "--json"))
    assert row["state"] == "done" and row["read_alias"] == "target"
    # And a write to the legacy name after all that lands once, in what is read.
    _id, doc = invenio_rdm.event(
        "view", datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"), "fffff-00001", "p-fffff-00001", "after"
    )
    search.ok("PUT", f"{legacy_name}/_doc/{_id}?refresh=true", doc)
    assert search.count(f"{index_prefix}events-stats-record-view") == len(expected) + 1
    again = js(cli("migrate-events", "--event-types", "view", "--json"))
    assert again["written"] == 0 and again["done"] == 1


@pytest.mark.parametrize("fault", ["429 on a bulk request", "connection dropped after the node took a bulk request"])
def test_back_pressure_and_dropped_connections_are_retried_without_loss(
    cli_env, search, search_url, index_prefix, fault
):
    """The migration retries (within COMMUNITY_STATS_JOB_RETRY_SECONDS) and ends exact."""
    legacy_name, expected = live_month(search, index_prefix, n=30)
    with FaultProxy(search_url) as proxy:
        if fault.startswith("429"):
            proxy.arm("POST", r"/_bulk", do="status", status=429)
        else:
            proxy.arm("POST", r"/_bulk", do="drop")
        run = migrate_view_through(proxy, index_prefix, cli_env)
        assert proxy.fired.is_set()
    assert run.returncode == 0, run.stderr
    assert ids(search, f"{legacy_name}-v2.0.0") == expected


# The bulk writes of the aggregation below: the usage delta of both communities (one shared
# pass), then the usage snapshot of each.
AGGREGATION_BULKS = 3
AGGREGATION_ARGS = ["aggregate", "--community-id", "alpha", "--community-id", "global", "--end-date", "2025-06-16"]


def test_the_aggregation_fault_points_are_every_bulk_write(cli_env, search, search_url, index_prefix):
    """The test below kills the run after each of its bulk writes: there are that many."""
    from aggregation_fixture import write_scenario

    write_scenario(search, index_prefix)
    with FaultProxy(search_url) as proxy:
        run = subprocess.run(
            cli_args(proxy.url, index_prefix, *AGGREGATION_ARGS), env=cli_env, capture_output=True, text=True
        )
    assert run.returncode == 0, run.stderr
    assert sum(1 for method, path in proxy.requests if (method, path.split("?")[0]) == ("POST", "/_bulk")) == (
        AGGREGATION_BULKS
    )


@pytest.mark.parametrize("nth", range(1, AGGREGATION_BULKS + 1))
def test_an_aggregation_killed_after_any_bulk_is_finished_exactly_by_a_rerun(
    cli_env, cli, search, search_url, index_prefix, nth
):
    """Killed after its n-th bulk write: the re-run takes over the dead run's lock at once
    (its holder ran here and is gone) and ends with the exact figures."""
    from collections import defaultdict

    from aggregation_fixture import COMMUNITY_A, expected_daily, write_scenario

    events = write_scenario(search, index_prefix)
    args = AGGREGATION_ARGS
    with FaultProxy(search_url) as proxy:
        job = subprocess.Popen(
            cli_args(proxy.url, index_prefix, *args),
            env=cli_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        proxy.arm("POST", r"/_bulk", nth=nth, do="kill", pid=job.pid)
        job.communicate(timeout=300)
    assert proxy.fired.is_set() and job.returncode == -signal.SIGKILL
    report = js(cli(*args, "--json"))
    assert report["errors"] == 0
    days = [f"2025-06-{d:02d}" for d in range(3, 17)]
    for community in (COMMUNITY_A, "global"):
        expected = expected_daily(events, community)
        hits = search.search_all(f"{index_prefix}stats-community-usage-delta", {"term": {"community_id": community}})
        deltas = {h["_source"]["period_start"][:10]: h["_source"]["totals"] for h in hits}
        assert sorted(deltas) == days and len(hits) == len(days)
        running = defaultdict(int)
        hits = search.search_all(f"{index_prefix}stats-community-usage-snapshot", {"term": {"community_id": community}})
        snaps = {h["_source"]["snapshot_date"][:10]: h["_source"]["totals"] for h in hits}
        assert sorted(snaps) == days and len(hits) == len(days)
        for day in days:
            for kind in ("view", "download"):
                want = expected.get(day, {}).get(kind, {}).get("total_events", 0)
                assert deltas[day][kind]["total_events"] == want, (community, day, kind)
                running[kind] += want
                assert snaps[day][kind]["total_events"] == running[kind], (community, day, kind)


def test_a_month_stopped_by_an_error_records_why_and_a_rerun_resumes_it(cli_env, cli, search, search_url, index_prefix):
    """An error that is not retried (here a 400 on the copy's second page) stops the month:
    it is left ``interrupted`` (not ``copying``) with the reason, and the next run ends exact."""
    legacy_name, expected = live_month(search, index_prefix, n=30)
    with FaultProxy(search_url) as proxy:
        proxy.arm("POST", r"^/_search", body_contains='"pit"', nth=2, do="status", status=400)
        run = migrate_view_through(proxy, index_prefix, cli_env)
        assert proxy.fired.is_set(), proxy.requests
    assert run.returncode == 1, run.stdout + run.stderr
    assert "injected by the test proxy" in run.stderr, run.stderr
    (row,) = js(cli("migration-status", "--event-types", "view", "--json"))
    assert row["state"] == "interrupted", row
    assert "stopped by an error" in row["error"] and "injected by the test proxy" in row["error"], row
    report = js(cli("migrate-events", "--event-types", "view", "--json"))
    assert report["months"][0]["state"] == "done", report
    assert ids(search, f"{legacy_name}-v2.0.0") == expected
