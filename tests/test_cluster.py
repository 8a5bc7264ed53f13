"""On a real 3-node cluster (``scripts/opensearch --nodes 3``, started by this module): the
jobs give the same results as on one node, and a data node killed (-9) in the middle of a
migration or of an aggregation, then restarted, costs nothing: 0 lost, 0 duplicated, the
job completes."""

import json
import os
import signal
import socket
import subprocess
import time
import uuid

import pytest

from conftest import OPENSEARCH_SCRIPT, Search, run_cli, wait_for
from helpers import ids

FINAL = ("completed", "failed", "cancelled", "killed", "lost")
NODES = 3


def _free_base_port():
    """A port P with P..P+2 (HTTP) and P+100..P+102 (transport) free."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base > 60000:
            continue
        ports = [base + i for i in range(NODES)] + [base + 100 + i for i in range(NODES)]
        try:
            for p in ports:
                with socket.socket() as t:
                    t.bind(("127.0.0.1", p))
        except OSError:
            continue
        return base
    raise RuntimeError("no free port range for the cluster")


def _gone(pid):
    """The process has exited (a zombie not yet reaped by its parent counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


class Cluster:
    """The 3-node cluster: its URLs, and its nodes' PIDs (from the launcher's pid files)."""

    def __init__(self, port, data_dir):
        self.port, self.data_dir = port, data_dir
        self.cmd = [str(OPENSEARCH_SCRIPT), "--port", str(port), "--nodes", str(NODES), "--data-dir", str(data_dir)]
        self.urls = [f"http://127.0.0.1:{port + i}" for i in range(NODES)]
        self.search = Search(self.urls[0])

    def run(self, action, timeout=300):
        return subprocess.run(
            [self.cmd[0], action, *self.cmd[1:], "--heap", "512m", "--timeout", "240"],
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def pid(self, node):
        path = self.data_dir / f"{self.port}-{NODES}node" / f"node-{node}" / "node.pid"
        return int(path.read_text().strip())

    def node_of_primary(self, index):
        """The number of the node holding shard 0's primary of ``index``."""
        status, rows = self.search.request("GET", f"_cat/shards/{index}?format=json&h=shard,prirep,node,state")
        assert status == 200, rows
        (row,) = [r for r in rows if r["shard"] == "0" and r["prirep"] == "p"]
        return int(row["node"].rsplit("-", 1)[1])

    def kill(self, node):
        """kill -9 one node (a process the launcher started for this module) and wait until it is gone."""
        pid = self.pid(node)
        os.kill(pid, signal.SIGKILL)
        assert wait_for(lambda: _gone(pid), timeout=30)

    def restart_missing(self):
        proc = self.run("start")
        assert proc.returncode == 0, proc.stderr


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(_free_base_port(), tmp_path_factory.mktemp("cluster"))
    started = c.run("start")
    assert started.returncode == 0, started.stderr
    try:
        yield c
    finally:
        c.run("stop", timeout=120)


@pytest.fixture
def cluster_env(cluster, cli_env):
    """The CLI's environment for the cluster (every node listed) and a prefix of the test's own."""
    prefix = f"c{uuid.uuid4().hex[:10]}-"
    env = dict(cli_env, INVENIO_SEARCH_HOSTS=repr(cluster.urls), INVENIO_SEARCH_INDEX_PREFIX=prefix)
    yield env, prefix
    cluster.search.request("DELETE", f"{prefix}*?expand_wildcards=all")


def cli_json(args, env, timeout=600):
    proc = run_cli(args, env, timeout=timeout)
    assert proc.returncode == 0, f"{args}: {proc.stderr[-3000:]}"
    return json.loads(proc.stdout)


def deltas(search, prefix, community="global"):
    hits = search.search_all(f"{prefix}stats-community-usage-delta-*", {"term": {"community_id": community}})
    return {h["_source"]["period_start"][:10]: h["_source"]["totals"] for h in hits}


SAMPLE = ["--records", "150", "--events-per-record", "10", "--months", "2", "--end-date", "2025-06-30", "--seed", "5"]
WINDOW = ["--start-date", "2025-05-01", "--end-date", "2025-06-30"]


def test_three_nodes_give_what_one_node_gives(cluster, cluster_env, cli_env, search, index_prefix):
    env, prefix = cluster_env
    for e in (env, cli_env):
        cli_json(["load-sample-data", *SAMPLE, "--json"], e)
        cli_json(["generate-community-events", "--json"], e)
        cli_json(["migrate-events", "--slices", "2", "--batch-size", "300", "--json"], e)
        cli_json(["aggregate", "-c", "global", *WINDOW, "--json"], e)
    on_cluster = cluster.search
    assert ids(on_cluster, f"{prefix}events-stats-*-v2.0.0") == ids(search, f"{index_prefix}events-stats-*-v2.0.0")
    got, want = deltas(on_cluster, prefix), deltas(search, index_prefix)
    assert got == want and len(got) == 61
    # Every index of the run (ours: states, bookmarks, locks, aggregations; the sample's
    # events and records) has a replica on the cluster, so that losing one node loses none.
    rows = on_cluster.ok("GET", f"_cat/indices/{prefix}*?format=json&h=index,rep,health&expand_wildcards=all")
    assert len(rows) > 10
    assert [r["index"] for r in rows if int(r["rep"]) < 1] == []


def job_status(name, pid_dir, env):
    return json.loads(run_cli(["process-status", name, "--json", "--pid-dir", pid_dir], env).stdout)


def _wait_final(name, pid_dir, env, timeout=600):
    def final():
        status = job_status(name, pid_dir, env)
        return status if status["state"] in FINAL else None

    return wait_for(final, timeout=timeout, interval=1)


def _explain(final, name, pid_dir, env):
    """The job's end and the tail of its log, for a failure message."""
    log = run_cli(["process-status", name, "--show-log", "--pid-dir", pid_dir], env).stdout
    return f"{final and {k: final.get(k) for k in ('state', 'error', 'message')}}\n{log[-4000:]}"


def test_a_node_killed_during_a_migration_costs_nothing(cluster, cluster_env, tmp_path):
    env, prefix = cluster_env
    cli_json(
        [
            "load-sample-data",
            "--records",
            "400",
            "--events-per-record",
            "40",
            "--months",
            "1",
            "--end-date",
            "2025-06-30",
            "--json",
        ],
        env,
    )
    source = f"{prefix}events-stats-record-view-2025-06"
    # The harshest case: the month being copied has no replica, so while its node is down
    # the source cannot be read at all (the job must wait, not fail).
    cluster.search.ok("PUT", f"{source}/_settings", {"index": {"number_of_replicas": 0}})
    assert wait_for(
        lambda: cluster.search.request("GET", f"_cluster/health/{source}?wait_for_status=green&timeout=1s")[0] == 200
    )
    expected = ids(cluster.search, f"{prefix}events-stats-*-2025-06")
    pid_dir = str(tmp_path / "pids")
    started = run_cli(["migrate-events-background", "--batch-size", "200", "--slices", "2", "--pid-dir", pid_dir], env)
    assert started.returncode == 0, started.stderr

    def status():
        return job_status("event-migration", pid_dir, env)

    assert wait_for(lambda: status()["processed"] > 2000 or status()["state"] in FINAL, timeout=120)
    assert status()["state"] == "running", "the migration ended before a node could be killed"
    victim = cluster.node_of_primary(source)
    cluster.kill(victim)
    time.sleep(5)
    cluster.restart_missing()
    final = _wait_final("event-migration", pid_dir, env)
    assert final and final["state"] == "completed", _explain(final, "event-migration", pid_dir, env)
    migrated = ids(cluster.search, f"{prefix}events-stats-*-2025-06-v2.0.0")
    assert migrated == expected and len(migrated) == len(set(migrated))


def test_a_node_killed_during_an_aggregation_costs_nothing(cluster, cluster_env, tmp_path):
    env, prefix = cluster_env
    cli_json(["load-sample-data", *SAMPLE, "--json"], env)
    cli_json(["generate-community-events", "--json"], env)
    cli_json(["migrate-events", "--json"], env)
    # The truth is the events themselves: views per day, counted by the cluster.
    pid_dir = str(tmp_path / "pids")
    started = run_cli(["aggregate-background", *WINDOW, "--pid-dir", pid_dir], env)
    assert started.returncode == 0, started.stderr

    def status():
        return job_status("aggregation", pid_dir, env)

    assert wait_for(lambda: status()["processed"] > 0 or status()["state"] in FINAL, timeout=120)
    assert status()["state"] == "running", "the aggregation ended before a node could be killed"
    cluster.kill(cluster.node_of_primary(f"{prefix}events-stats-record-view-2025-06-v2.0.0"))
    time.sleep(5)
    cluster.restart_missing()
    final = _wait_final("aggregation", pid_dir, env)
    assert final and final["state"] == "completed", _explain(final, "aggregation", pid_dir, env)
    got = deltas(cluster.search, prefix)
    assert len(got) == 61
    for day, totals in got.items():
        query = {"range": {"timestamp": {"gte": f"{day}T00:00:00", "lte": f"{day}T23:59:59"}}}
        assert totals["view"]["total_events"] == cluster.search.count(
            f"{prefix}events-stats-record-view-*-v2.0.0", query
        ), day
