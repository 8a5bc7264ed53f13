"""The Celery task (``invenio_celery.tasks`` entry point) run by a REAL Celery worker
(``celery -A invenio_app.celery worker``, the instance's configuration from ``INVENIO_*``
variables) over a REAL broker and result backend (Debian's redis-server, started by
``scripts/redis``), against the real OpenSearch node; and the beat schedule entry
(``COMMUNITY_STATS_AGGREGATION_SCHEDULE``) as invenio-celery hands it to Celery, and as
Celery beat sends it."""

import gc
import json
import os
import re
import signal
import subprocess
import sys
import uuid
from datetime import date, timedelta

import pytest
from test_invenio import INVENIO, invenio_env

from conftest import REPO, wait_for
from helpers import free_port

REDIS_SCRIPT = REPO / "scripts" / "redis"
TASK = "invenio_community_stats.tasks.aggregate_community_stats"
BEAT_ENTRY = "community-stats-aggregation"


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    """A Redis of this module's own (broker and result backend), stopped at the end."""
    port = free_port()
    rdir = tmp_path_factory.mktemp("redis")
    cmd = [str(REDIS_SCRIPT), "--port", str(port), "--dir", str(rdir)]
    start = subprocess.run([cmd[0], "start", *cmd[1:]], capture_output=True, text=True, timeout=60)
    assert start.returncode == 0, f"scripts/redis start failed:\n{start.stderr}"
    assert start.stdout.strip() == f"redis://127.0.0.1:{port}"
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        subprocess.run([cmd[0], "stop", *cmd[1:]], capture_output=True, text=True, timeout=60)


def worker_env(tmp_path, redis_url, search_url, index_prefix, **extra):
    """The instance's configuration, as an operator would give it to the worker."""
    return invenio_env(
        tmp_path,
        INVENIO_BROKER_URL=redis_url,
        INVENIO_CELERY_BROKER_URL=redis_url,
        INVENIO_CELERY_RESULT_BACKEND=redis_url,
        INVENIO_SEARCH_HOSTS=repr([search_url]),
        INVENIO_SEARCH_INDEX_PREFIX=index_prefix,
        PYTHONUNBUFFERED="1",
        **extra,
    )


class Worker:
    """A ``celery -A invenio_app.celery worker`` subprocess, stopped by its PID."""

    def __init__(self, env, log_path, extra_args=()):
        self.hostname = f"cs-test-{uuid.uuid4().hex[:8]}@localhost"
        self.log_path = log_path
        self.log_file = open(log_path, "w")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "invenio_app.celery",
                "worker",
                "--pool",
                "solo",
                "--concurrency",
                "1",
                "-l",
                "info",
                "-n",
                self.hostname,
                *extra_args,
            ],
            env=env,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            cwd=str(log_path.parent),
        )

    def log(self):
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout=120):
        ready = wait_for(
            lambda: self.proc.poll() is not None or f"{self.hostname} ready." in self.log(),
            timeout=timeout,
            interval=0.2,
        )
        assert ready and self.proc.poll() is None, f"the worker is not ready (exit {self.proc.poll()}):\n{self.log()}"

    def stop(self, timeout=30):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        self.log_file.close()


@pytest.fixture
def start_worker(tmp_path, redis_url, search_url, index_prefix):
    """``start_worker(*extra_args, **env)`` starts a worker for this test's prefix and waits
    until it is ready; every worker started is stopped at teardown."""
    workers = []

    def _start(*extra_args, **extra_env):
        env = worker_env(tmp_path, redis_url, search_url, index_prefix, **extra_env)
        worker = Worker(env, tmp_path / f"worker-{len(workers)}.log", extra_args)
        workers.append(worker)
        worker.wait_ready()
        return worker

    yield _start
    for worker in workers:
        worker.stop()


@pytest.fixture
def celery_client(redis_url):
    """A plain Celery app of the test process on the same broker and backend (it does not
    know the task: it sends it by name)."""
    from celery import Celery

    app = Celery("community-stats-test", broker=redis_url, backend=redis_url, set_as_current=False)
    # invenio-celery's workers store results in msgpack (its CELERY_RESULT_SERIALIZER); the
    # Redis backend does not record the content type, so the caller must read msgpack.
    app.conf.update(
        task_serializer="json",
        result_serializer="msgpack",
        accept_content=["json", "msgpack"],
        result_accept_content=["json", "msgpack"],
    )
    yield app
    # AsyncResults unsubscribe from the backend when collected: collect them while this
    # module's Redis still runs (not at interpreter exit).
    gc.collect()
    app.close()


def cli_ok(cli, *args):
    proc = cli(*args)
    assert proc.returncode == 0, proc.stderr
    return proc


def day_range(start, end):
    d = date.fromisoformat(start)
    while d <= date.fromisoformat(end):
        yield d
        d += timedelta(days=1)


def view_count(search, prefix, day, community=None):
    """Views of one UTC day in the event indices (independent of the code under test)."""
    query = {
        "bool": {
            "filter": [
                {"range": {"timestamp": {"gte": f"{day}T00:00:00", "lt": f"{day + timedelta(days=1)}T00:00:00"}}}
            ]
        }
    }
    if community is not None:
        query["bool"]["filter"].append({"term": {"community_ids": community}})
    return search.count(f"{prefix}events-stats-record-view-*", query)


def deltas(search, prefix, community):
    hits = search.search_all(f"{prefix}stats-community-usage-delta-*", {"term": {"community_id": community}})
    return {h["_source"]["period_start"][:10]: h["_source"] for h in hits}


# --------------------------------------------------------------------------- the worker

NOT_REGISTERED = (
    "the worker does not list the task: is the package installed with its "
    "invenio_celery.tasks entry point (maturin develop / pip install)?"
)


def test_worker_registers_the_task_through_the_entry_point(start_worker, celery_client):
    worker = start_worker()
    # The worker's own list of tasks (its banner) and its answer to `inspect registered`.
    assert f". {TASK}" in worker.log(), NOT_REGISTERED
    registered = celery_client.control.inspect(destination=[worker.hostname], timeout=10).registered()
    assert registered is not None, f"no answer from {worker.hostname}:\n{worker.log()}"
    assert TASK in registered[worker.hostname]


def test_task_aggregates_in_the_worker(cli, search, index_prefix, start_worker, celery_client):
    cli_ok(
        cli,
        "load-sample-data",
        "--records",
        "40",
        "--communities",
        "3",
        "--events-per-record",
        "0",
        "--months",
        "3",
        "--end-date",
        "2025-06-30",
    )
    cli_ok(cli, "generate-community-events")
    cli_ok(
        cli,
        "generate-usage-events",
        "--use-migrated-indices",
        "--enrich-events",
        "--events-per-record",
        "10",
        "--event-end-date",
        "2025-06-30",
        "--seed",
        "3",
    )
    start, end = "2025-06-10", "2025-06-20"
    days = list(day_range(start, end))
    # The community with the most views in the window (enriched events carry community_ids).
    communities = [h["_id"] for h in search.search_all(f"{index_prefix}communities")]
    community = max(communities, key=lambda c: sum(view_count(search, index_prefix, d, c) for d in days))
    expected = {
        "global": {str(d): view_count(search, index_prefix, d) for d in days},
        community: {str(d): view_count(search, index_prefix, d, community) for d in days},
    }
    assert sum(expected["global"].values()) > sum(expected[community].values()) > 0
    assert search.indices(f"{index_prefix}stats-community-usage-delta-*") == []

    worker = start_worker()
    assert f". {TASK}" in worker.log(), NOT_REGISTERED
    result = celery_client.send_task(
        TASK, kwargs={"community_ids": ["global", community], "start_date": start, "end_date": end}
    )
    report = result.get(timeout=120)
    assert result.successful()

    assert isinstance(report["aggregators"], list) and report["aggregators"], report
    # The worker ran it (not this process): its log names the task's id.
    # The worker stores the result before it logs the success line: wait for the line.
    assert wait_for(lambda: f"{TASK}[{result.id}] succeeded" in worker.log(), timeout=30, interval=0.2), worker.log()
    for cid, per_day in expected.items():
        got = deltas(search, index_prefix, cid)
        assert sorted(got) == sorted(per_day), cid
        for day, views in per_day.items():
            assert got[day]["totals"]["view"]["total_events"] == views, (cid, day)


def test_task_error_reaches_the_caller(start_worker, celery_client):
    worker = start_worker()
    assert f". {TASK}" in worker.log(), NOT_REGISTERED
    result = celery_client.send_task(TASK, kwargs={"start_date": "2025-13-01"})
    with pytest.raises(Exception) as err:
        result.get(timeout=120)
    assert result.failed()
    assert "2025-13-01" in str(err.value)


# A month of a small instance: 20 records, 4 events each, June 2025.
SMALL_SAMPLE = ("--records", "20", "--events-per-record", "4", "--months", "1", "--end-date", "2025-06-30")
REFERENCE_TASK = "invenio_stats_dashboard.tasks.aggregation_tasks.aggregate_community_record_stats"


def test_the_references_task_name_runs_ours(cli, search, index_prefix, start_worker, celery_client):
    """A beat entry or send_task written for the reference (its task name, its positional
    aggregator list, its keyword arguments) runs our aggregation when the reference is not
    installed."""
    cli_ok(cli, "load-sample-data", *SMALL_SAMPLE)
    worker = start_worker()
    assert f". {REFERENCE_TASK}" in worker.log(), worker.log()
    result = celery_client.send_task(
        REFERENCE_TASK,
        args=[["community-usage-delta-agg"]],
        kwargs={"start_date": "2025-06-10", "end_date": "2025-06-12", "community_ids": ["global"], "verbose": True},
    )
    report = result.get(timeout=120)
    assert [a["aggregator"] for a in report["aggregators"]] == ["community-usage-delta-agg"]
    got = deltas(search, index_prefix, "global")
    assert sorted(got) == ["2025-06-10", "2025-06-11", "2025-06-12"]
    for day, doc in got.items():
        assert doc["totals"]["view"]["total_events"] == view_count(search, index_prefix, date.fromisoformat(day))


def test_aggregate_no_eager_runs_on_the_workers(
    search, index_prefix, tmp_path, redis_url, search_url, start_worker, cli
):
    """``invenio community-stats aggregate --no-eager``: the task goes to the instance's
    Celery workers and the command prints the report the worker returns."""
    cli_ok(cli, "load-sample-data", *SMALL_SAMPLE)
    worker = start_worker()
    env = worker_env(tmp_path, redis_url, search_url, index_prefix)
    proc = subprocess.run(
        [
            INVENIO,
            "community-stats",
            "aggregate",
            "--no-eager",
            "-c",
            "global",
            "--start-date",
            "2025-06-10",
            "--end-date",
            "2025-06-11",
            "--aggregation-type",
            "community-usage-delta-agg",
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    task_id = re.search(r"as task ([0-9a-f-]+)", proc.stderr).group(1)
    assert wait_for(lambda: f"{TASK}[{task_id}] succeeded" in worker.log(), timeout=30, interval=0.2), worker.log()
    assert report["documents"] == 2 and sorted(deltas(search, index_prefix, "global")) == ["2025-06-10", "2025-06-11"]


# ----------------------------------------------------------------------- the beat schedule

SHOW_SCHEDULE = """
import json, sys
from invenio_app.factory import create_api
from invenio_app.celery import celery

def show(beat):
    entry = (beat or {}).get(sys.argv[1])
    if entry is None:
        return None
    s = entry["schedule"]
    return {"task": entry["task"], "schedule_type": type(s).__name__,
            "schedule": sorted(s.minute) if type(s).__name__ == "crontab" else repr(s),
            "other": sorted(k for k in beat if k != sys.argv[1])}

api = create_api()
print(json.dumps({
    "worker": show(celery.conf.beat_schedule),
    "worker_config": show(celery.flask_app.config.get("CELERY_BEAT_SCHEDULE")),
    "api": show(api.extensions["invenio-celery"].celery.conf.beat_schedule),
    "api_config": show(api.config.get("CELERY_BEAT_SCHEDULE")),
}))
"""


def beat_schedules(tmp_path, cfg=None, **extra):
    env = invenio_env(tmp_path, **extra)
    if cfg is not None:
        (tmp_path / "instance" / "invenio.cfg").write_text(cfg)
    proc = subprocess.run(
        [sys.executable, "-c", SHOW_SCHEDULE, BEAT_ENTRY], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_no_schedule_by_default(tmp_path):
    got = beat_schedules(tmp_path)
    assert got == {"worker": None, "worker_config": None, "api": None, "api_config": None}


def test_schedule_from_env_reaches_celery_beat_schedule(tmp_path):
    got = beat_schedules(tmp_path, INVENIO_COMMUNITY_STATS_AGGREGATION_SCHEDULE="3600")
    want = {"task": TASK, "schedule_type": "int", "schedule": "3600", "other": []}
    assert got == {"worker": want, "worker_config": want, "api": want, "api_config": want}


def test_crontab_schedule_in_invenio_cfg_is_preserved(tmp_path):
    cfg = (
        "from celery.schedules import crontab\n"
        "COMMUNITY_STATS_AGGREGATION_SCHEDULE = crontab(minute=40)\n"
        "CELERY_BEAT_SCHEDULE = {'other-task': {'task': 'x.y', 'schedule': 60}}\n"
    )
    got = beat_schedules(tmp_path, cfg)
    want = {"task": TASK, "schedule_type": "crontab", "schedule": [40], "other": ["other-task"]}
    assert got == {"worker": want, "worker_config": want, "api": want, "api_config": want}


def test_an_entry_of_the_instance_with_the_same_name_wins(tmp_path):
    cfg = (
        "COMMUNITY_STATS_AGGREGATION_SCHEDULE = 3600\n"
        f"CELERY_BEAT_SCHEDULE = {{{BEAT_ENTRY!r}: {{'task': 'my.own.task', 'schedule': 120}}}}\n"
    )
    got = beat_schedules(tmp_path, cfg)
    want = {"task": "my.own.task", "schedule_type": "int", "schedule": "120", "other": []}
    assert got == {"worker": want, "worker_config": want, "api": want, "api_config": want}


def test_beat_sends_the_scheduled_task_and_the_worker_runs_it(cli, search, index_prefix, tmp_path, start_worker):
    today = date.today()
    cli_ok(
        cli,
        "load-sample-data",
        "--records",
        "10",
        "--communities",
        "1",
        "--events-per-record",
        "3",
        "--months",
        "1",
        "--end-date",
        str(today),
    )
    assert search.count(f"{index_prefix}events-stats-record-view-*") > 0
    # A worker with an embedded beat (-B) and a 2-second schedule from the instance config.
    worker = start_worker(
        "-B", "--schedule", str(tmp_path / "beat-schedule"), INVENIO_COMMUNITY_STATS_AGGREGATION_SCHEDULE="2"
    )
    assert f". {TASK}" in worker.log(), NOT_REGISTERED
    sent = f"Sending due task {BEAT_ENTRY} ({TASK})"
    succeeded = re.compile(rf"{re.escape(TASK)}\[[0-9a-f-]+\] succeeded")
    done = wait_for(lambda: sent in worker.log() and succeeded.search(worker.log()), timeout=120, interval=0.5)
    assert done, worker.log()
    # The scheduled run (no options: every opted-in community and global, from the first
    # event) wrote global's days.
    got = deltas(search, index_prefix, "global")
    assert got, worker.log()
    for day, doc in got.items():
        assert doc["totals"]["view"]["total_events"] == view_count(search, index_prefix, date.fromisoformat(day)), day
    assert sum(d["totals"]["view"]["total_events"] for d in got.values()) > 0
