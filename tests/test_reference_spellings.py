"""Operators' scripts written for the reference package (invenio-stats-dashboard at f621a3e)
keep working: a representative line of each of its spellings runs here, against the real
node, and does what ours does (README: "The reference's spellings")."""

import json

import pytest
from flask import Flask

from invenio_community_stats import processes
from invenio_community_stats.config import REFERENCE_KEYS, setting
from invenio_community_stats.errors import ConfigError
from invenio_community_stats.ext import REFERENCE_BEAT_ENTRY, TASK_NAME, InvenioCommunityStats

from conftest import wait_for
from helpers import ids, js

FINAL = ("completed", "failed", "cancelled", "killed", "lost")
#: The sample's legacy monthly event indices.
LEGACY = ",".join(f"{{p}}events-stats-{k}-2025-0{m}" for k in ("record-view", "file-download") for m in (4, 5, 6))


@pytest.fixture
def sample(cli, index_prefix):
    cli(
        "load-sample-data",
        "--records",
        "40",
        "--events-per-record",
        "4",
        "--months",
        "3",
        "--end-date",
        "2025-06-30",
        check=True,
    )
    return index_prefix


def ended(name, pid_dir):
    status = wait_for(lambda: (s := processes.status(name, pid_dir))["state"] in FINAL and s, timeout=120)
    assert status and status["state"] == "completed", status
    return status


def test_the_usage_events_group(cli, search, sample, tmp_path):
    p, pid_dir = sample, str(tmp_path / "pids")
    views = ids(search, f"{p}events-stats-record-view-2025-05")
    report = js(
        cli("usage-events", "migrate", "-e", "view", "-m", "2025-05", "-b", "0", "--batch-size", "50", "--json")
    )
    assert [(m["event_type"], m["month"], m["state"]) for m in report["months"]] == [("view", "2025-05", "done")]
    assert ids(search, f"{p}events-stats-record-view-2025-05-v2.0.0") == views
    (row,) = js(cli("usage-events", "status", "-e", "view", "-m", "2025-05", "--json"))
    assert row["state"] == "done" and row["migrated"] == len(views)
    # clear-bookmarks: the month's checkpoint is forgotten; the next run copies it again, no duplicates.
    cleared = js(cli("usage-events", "clear-bookmarks", "-e", "view", "-m", "2025-05", "--confirm", "--json"))
    assert [(c["month"], c["state_before"]) for c in cleared["cleared"]] == [("2025-05", "done")]
    (row,) = js(cli("usage-events", "status", "-e", "view", "-m", "2025-05", "--json"))
    assert row["state"] == "pending" and row["checkpoint"] is None
    # Repeated -m, each a month or a range (the reference's spelling), in the background.
    started = js(
        cli(
            "usage-events",
            "migrate-background",
            "-m",
            "2025-04",
            "-m",
            "2025-05:2025-06",
            "--pid-dir",
            pid_dir,
            "--json",
        )
    )
    status = ended("event-migration", pid_dir)
    assert status["pid"] == started["pid"] and "migrate-events" in status["command"]
    assert ids(search, f"{p}events-stats-*-v2.0.0") == ids(search, LEGACY.format(p=p))
    # Generation, with the reference's --yes-i-know.
    dry = js(
        cli(
            "usage-events",
            "generate",
            "--yes-i-know",
            "--events-per-record",
            "1",
            "--event-end-date",
            "2025-06-30",
            "--dry-run",
            "--json",
        )
    )
    assert dry["dry_run"] and dry["view_events"] == 40
    js(
        cli(
            "usage-events",
            "generate-background",
            "--yes-i-know",
            "--events-per-record",
            "1",
            "--event-end-date",
            "2025-06-30",
            "--pid-dir",
            pid_dir,
            "--json",
        )
    )
    assert ended("usage-event-generation", pid_dir)["exit_code"] == 0


def test_the_community_events_group(cli, search, sample, tmp_path):
    p, pid_dir = sample, str(tmp_path / "pids")
    status = cli("community-events", "status", "--community-details")
    assert status.returncode == 0, status.stderr
    assert "Missing events by community:" in status.stdout and "  global: 40" in status.stdout
    js(cli("community-events", "generate", "-c", "sample-community-1", "--json"))
    js(cli("community-events", "generate-background", "--pid-dir", pid_dir, "--json"))
    assert "generate-community-events" in ended("community-event-generation", pid_dir)["command"]
    after = js(cli("community-events", "status", "--json"))
    assert after["events_created"] == 0 and after["missing_by_community"] == {}
    assert search.count(f"{p}stats-community-events-*", {"term": {"community_id": "global"}}) == 40


def test_the_aggregation_spellings(cli, search, sample, tmp_path):
    p = sample
    cli("generate-community-events", check=True)
    window = ["--start-date", "2025-06-01", "--end-date", "2025-06-10"]
    report = js(cli("aggregate", "-c", "global", *window, "--force", "--eager", "-v", "--json"))
    assert report["errors"] == 0 and report["documents"] > 0
    # --no-eager needs the instance's Celery workers: the standalone app has none.
    no_celery = cli("aggregate", "--no-eager", "-c", "global", *window)
    assert no_celery.returncode == 2 and "Celery" in no_celery.stderr and "aggregate-background" in no_celery.stderr
    detailed = cli("status", "-c", "global", "-v")
    assert detailed.returncode == 0 and "global — community-usage-delta-agg" in detailed.stdout
    assert "  Bookmark:     2025-06-10" in detailed.stdout
    # The reference's query names of read, and the record queries it never enabled.
    read = cli("read", "--query-type", "community-usage-delta", "-c", "global", *window)
    assert read.returncode == 0 and "usage_deltas: 10 documents" in read.stdout, read.stdout
    records = cli("read", "--query-type", "community-record-snapshot-added", "-c", "global", *window)
    assert records.returncode == 0 and " records " in records.stdout and " files " in records.stdout, records.stdout
    refused = cli("read", "--query-type", "community-record-delta-published")
    assert refused.returncode == 2 and "use community-record-delta-added" in refused.stderr
    # Locks: the reference's name of the aggregation lock, --list-locks, --dry-run.
    assert (
        "No aggregation lock is held"
        in cli("clear-lock", "--lock-name", "community_stats_aggregation", "--dry-run").stdout
    )
    assert "aggregation  free" in cli("clear-lock", "--list-locks").stdout
    # clear-bookmarks with the reference's flags: everything, without a prompt.
    cleared = cli("clear-bookmarks", "--all-communities", "--all-aggregation-types", "--confirm", "--json")
    assert json.loads(cleared.stdout)["deleted"] > 0
    assert all(r["bookmark"] is None for r in js(cli("status", "--json")))
    both = cli("clear-bookmarks", "--all-communities", "-c", "global")
    assert both.returncode == 2 and "not both" in both.stderr
    destroyed = js(cli("destroy-indices", "--yes-i-know", "--json"))
    assert destroyed["deleted"] and not search.indices(f"{p}stats-community-usage-delta-*")


def test_the_processes_spellings(cli, sample, tmp_path):
    pid_dir = str(tmp_path / "pids")
    js(cli("migrate-events-background", "--months", "2025-04", "--pid-dir", pid_dir, "--json"))
    ended("event-migration", pid_dir)
    listed = cli("processes", "list", "--package-only", "--all", "--pid-dir", pid_dir)
    assert listed.returncode == 0 and "event-migration" in listed.stdout
    # `processes status` without a name is the migration's, as in the reference.
    shown = cli("processes", "status", "--pid-dir", pid_dir)
    assert shown.returncode == 0 and "Process: event-migration" in shown.stdout


def test_the_references_configuration_keys():
    """Each key of the reference is read as ours; ours wins when both are set; a bad value
    names the key the instance set."""
    ours = {theirs: our for theirs, our in REFERENCE_KEYS.items()}
    assert ours["STATS_DASHBOARD_REINDEXING_BATCH_SIZE"] == "COMMUNITY_STATS_MIGRATION_BATCH_SIZE"
    assert setting({"STATS_DASHBOARD_REINDEXING_BATCH_SIZE": 777}, "COMMUNITY_STATS_MIGRATION_BATCH_SIZE") == 777
    assert setting({"COMMUNITY_STATS_CATCHUP_INTERVAL": 30}, "COMMUNITY_STATS_CATCHUP_DAYS") == 30
    assert setting({"COMMUNITY_STATS_TOP_SUBCOUNT_LIMIT": 7}, "COMMUNITY_STATS_TOP_N") == 7
    assert setting({"STATS_DASHBOARD_COMMUNITY_OPT_IN": False}, "COMMUNITY_STATS_OPT_IN") is False
    both = {"COMMUNITY_STATS_CATCHUP_DAYS": 10, "COMMUNITY_STATS_CATCHUP_INTERVAL": 30}
    assert setting(both, "COMMUNITY_STATS_CATCHUP_DAYS") == 10
    with pytest.raises(ConfigError, match="STATS_DASHBOARD_REINDEXING_MAX_MEMORY_PERCENT .read as"):
        setting({"STATS_DASHBOARD_REINDEXING_MAX_MEMORY_PERCENT": 150}, "COMMUNITY_STATS_MIGRATION_MAX_MEMORY_PERCENT")
    # The extension registers the alias's value, not our default, as the app's setting.
    app = Flask("t")
    app.config.update(
        STATS_DASHBOARD_REINDEXING_MAX_MEMORY_PERCENT=60, COMMUNITY_STATS_TOP_N=5, COMMUNITY_STATS_TOP_SUBCOUNT_LIMIT=9
    )
    InvenioCommunityStats(app)
    assert app.config["COMMUNITY_STATS_MIGRATION_MAX_MEMORY_PERCENT"] == 60
    assert app.config["COMMUNITY_STATS_TOP_N"] == 5


def test_the_references_scheduled_aggregation_switch():
    """COMMUNITY_STATS_SCHEDULED_AGG_TASKS_ENABLED: hourly at minute 40 under the
    reference's beat entry, running our task."""
    from celery.schedules import crontab

    app = Flask("t")
    app.config["COMMUNITY_STATS_SCHEDULED_AGG_TASKS_ENABLED"] = True
    InvenioCommunityStats(app)
    entry = app.config["CELERY_BEAT_SCHEDULE"][REFERENCE_BEAT_ENTRY]
    assert entry["task"] == TASK_NAME and entry["schedule"] == crontab(minute="40", hour="*")
    off = Flask("t")
    InvenioCommunityStats(off)
    assert "CELERY_BEAT_SCHEDULE" not in off.config


def test_a_disabled_instance_refuses_jobs_and_says_why(cli, cli_env, sample, tmp_path):
    env = dict(cli_env, INVENIO_COMMUNITY_STATS_ENABLED="False")
    pid_dir = tmp_path / "pids"
    for args in (
        ["aggregate", "-c", "global"],
        ["migrate-events"],
        ["usage-events", "generate", "--yes-i-know"],
        ["migrate-events-background", "--pid-dir", str(pid_dir)],
    ):
        proc = cli(*args, env=env)
        assert proc.returncode == 1, (args, proc.stdout)
        assert "COMMUNITY_STATS_ENABLED = False" in proc.stderr, proc.stderr
    assert not pid_dir.exists() or not list(pid_dir.iterdir()), "nothing was started"
    # Reading still works.
    assert cli("status", "--json", env=env).returncode == 0


#: Lines of the reference's own documentation (docs/source/setup.md and cli.md at f621a3e),
#: verbatim, in the order its setup guide gives them.
REFERENCE_DOC_LINES = [
    "invenio community-stats community-events generate",
    "invenio community-stats usage-events migrate",
    "invenio community-stats aggregate",
    "invenio community-stats aggregate --force --verbose",
    "invenio community-stats read --community-id global --query-type community-usage-delta --start-date 2024-01-01",
    "invenio community-stats clear-bookmarks --all-communities --all-aggregation-types --confirm",
]


def test_lines_of_the_references_docs_run_under_invenio(cli, search, index_prefix, search_url, tmp_path):
    import shlex
    import subprocess

    from test_invenio import INVENIO, invenio_env

    cli("load-sample-data", "--records", "30", "--events-per-record", "3", "--months", "2", check=True)
    env = invenio_env(tmp_path, INVENIO_SEARCH_HOSTS=repr([search_url]), INVENIO_SEARCH_INDEX_PREFIX=index_prefix)
    for line in REFERENCE_DOC_LINES:
        argv = shlex.split(line)
        proc = subprocess.run([INVENIO, *argv[1:]], env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"{line}\n{proc.stderr[-2000:]}"
    assert search.count(f"{index_prefix}events-stats-record-view-*-v2.0.0") == search.count(
        f"{index_prefix}events-stats-record-view"
    )
    assert search.indices(f"{index_prefix}stats-community-usage-delta-*")
    # What it has and we do not: one line saying so, exit 2.
    cache = subprocess.run(
        [INVENIO, "community-stats", "cache", "generate", "--year", "2023"], env=env, capture_output=True, text=True
    )
    assert cache.returncode == 2 and "no response cache" in cache.stderr


def test_enable_dashboards_selects_communities_and_needs_the_communities_service(cli, search, sample):
    """The reference's enable-dashboards: communities named (ids or slugs) or selected from
    their community events; the flag itself is written through invenio-communities' service,
    which the standalone app has not: exit 2 saying so, nothing written."""
    p = sample
    cli("generate-community-events", check=True)
    per_community = {}
    for hit in search.search_all(f"{p}stats-community-events-*"):
        c = hit["_source"]["community_id"]
        per_community[c] = per_community.get(c, 0) + 1
    per_community.pop("global")
    picked = js(cli("enable-dashboards", "--record-threshold", "1", "--dry-run", "--json"))
    assert {c["id"]: c["events"] for c in picked["communities"]} == per_community
    enabled = {
        h["_id"]
        for h in search.search_all(f"{p}communities")
        if h["_source"]["custom_fields"].get("stats:dashboard_enabled")
    }
    assert enabled and set(picked["would_enable"]) == set(per_community) - enabled
    busiest = max(per_community.values())
    top = js(cli("enable-dashboards", "--record-threshold", str(busiest), "--dry-run", "--json"))
    assert {c["id"] for c in top["communities"]} == {c for c, n in per_community.items() if n == busiest}
    assert js(cli("enable-dashboards", "--active-since", "2099-01-01", "--dry-run", "--json"))["communities"] == []
    named = js(cli("enable-dashboards", "sample-community-2", "--dry-run", "--json"))["communities"]
    assert [c["slug"] for c in named] == ["sample-community-2"]
    before = search.search_all(f"{p}communities")
    refused = cli("enable-dashboards", "--record-threshold", "1")
    assert refused.returncode == 2 and "invenio-communities" in refused.stderr
    assert search.search_all(f"{p}communities") == before
    nothing = cli("enable-dashboards")
    assert nothing.returncode == 2 and "name communities" in nothing.stderr
