"""What every bench shares: JSON over HTTP to the node, index counts and deletes, the
--search-host option, /proc memory figures, our CLI run with its peak memory, and the
pieces of the opensearch-py loops (the published records' scan, streaming_bulk timed)."""

import http.client as http_client
import json
import os
import resource
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

http_client._MAXHEADERS = 100_000  # _reindex answers with one deprecation Warning header per index


def http(method, url, body=None, ctype="application/json", timeout=600):
    """One request; returns the reply's JSON (None when empty), also for an HTTP error (a
    body that is not JSON as {"error": text, "status": code})."""
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": ctype})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            text = r.read()
            return json.loads(text) if text.strip() else None
    except urllib.error.HTTPError as e:
        text = e.read()
        try:
            return json.loads(text or b"{}")
        except ValueError:
            return {"error": text.decode(errors="replace"), "status": e.code}


def count(host, pattern, refresh=False):
    """Documents in the open indices of ``pattern`` (0 when none), after a _refresh if ``refresh``."""
    if refresh:
        http("POST", f"{host}/{pattern}/_refresh?allow_no_indices=true&ignore_unavailable=true")
    r = http("GET", f"{host}/{pattern}/_count?allow_no_indices=true&ignore_unavailable=true&expand_wildcards=open")
    return (r or {}).get("count", 0)


def delete(host, pattern):
    http("DELETE", f"{host}/{pattern}?expand_wildcards=all&allow_no_indices=true&ignore_unavailable=true")


def post_bulks(host, bodies, in_flight, settle):
    """POSTs the NDJSON ``bodies`` to _bulk with ``in_flight`` requests running at once (twice
    as many queued); ``settle(reply)`` is called for every reply, in order."""
    with ThreadPoolExecutor(in_flight) as pool:
        futures = []
        for body in bodies:
            futures.append(pool.submit(http, "POST", f"{host}/_bulk", body, "application/x-ndjson"))
            if len(futures) >= in_flight * 2:
                for fu in futures[:in_flight]:
                    settle(fu.result())
                futures = futures[in_flight:]
        for fu in futures:
            settle(fu.result())


def node_cpu_seconds(host):
    """CPU seconds the node's processes have used so far (OpenSearch's own figure, summed
    over the nodes)."""
    nodes = http("GET", f"{host}/_nodes/stats/process")["nodes"].values()
    return sum(n["process"]["cpu"]["total_in_millis"] for n in nodes) / 1000


class CpuMeter:
    """CPU seconds used during a ``with`` block (user + system): ``own`` by this process (the
    Python loops and the raw _bulk run here), ``children`` by the child processes waited for
    in it (our CLI), ``node`` by OpenSearch."""

    def __init__(self, host):
        self.host = host

    @staticmethod
    def _cpu(who):
        r = resource.getrusage(who)
        return r.ru_utime + r.ru_stime

    def __enter__(self):
        self._start = (
            self._cpu(resource.RUSAGE_SELF),
            self._cpu(resource.RUSAGE_CHILDREN),
            node_cpu_seconds(self.host),
        )
        return self

    def __exit__(self, *exc):
        own, children, node = self._start
        self.own = self._cpu(resource.RUSAGE_SELF) - own
        self.children = self._cpu(resource.RUSAGE_CHILDREN) - children
        self.node = node_cpu_seconds(self.host) - node


def cpu_line(what, client_seconds, node_seconds, n):
    """CPU seconds per million documents of a client and of the node, on one line."""
    scale = 1e6 / max(n, 1)
    client, node = client_seconds * scale, node_seconds * scale
    return f"  CPU per million events, {what:<30} client {client:7.1f} s   node {node:7.1f} s"


def bulk_error(reply):
    """The first failed item of a _bulk reply (the reply itself if it has no items), None if
    every item succeeded."""
    r = reply or {}
    if not r.get("errors") and "items" in r:
        return None
    return next((i for i in r.get("items", []) if list(i.values())[0].get("error")), r)


def node_version(host, timeout=600):
    return http("GET", host, timeout=timeout)["version"]["number"]


def add_search_host(ap, default):
    """The --search-host option (default: $COMMUNITY_STATS_BENCH_SEARCH_HOST, else ``default``)."""
    ap.add_argument("--search-host", default=os.environ.get("COMMUNITY_STATS_BENCH_SEARCH_HOST", default))


def proc_status_kib(pid, field):
    """A figure of /proc/PID/status in KiB (``field``: VmRSS, VmHWM, ...); None when absent."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def run_cli(host, prefix, *args, field="VmHWM", every=0.05, sample_at=None):
    """Runs our CLI (``python -m invenio_community_stats``, standalone, on ``host`` with
    ``prefix``); exits if it fails. Returns (seconds, peak of /proc ``field`` in MiB, that
    figure in MiB when ``sample_at()`` first held (0 if never), stdout). ``field`` is sampled
    every ``every`` seconds."""
    env = dict(
        os.environ,
        COMMUNITY_STATS_APP_MODE="standalone",
        INVENIO_SEARCH_HOSTS=repr([host]),
        INVENIO_SEARCH_INDEX_PREFIX=prefix,
    )
    t = time.perf_counter()
    p = subprocess.Popen(
        [sys.executable, "-m", "invenio_community_stats", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    peak, early = [0], [None]

    def watch():
        while p.poll() is None:
            kib = proc_status_kib(p.pid, field)
            if kib is not None:
                peak[0] = max(peak[0], kib)
                if early[0] is None and sample_at and sample_at():
                    early[0] = kib
            time.sleep(every)

    w = threading.Thread(target=watch)
    w.start()
    out, _ = p.communicate()
    w.join()
    if p.returncode != 0:
        raise SystemExit(f"community-stats {' '.join(args)} failed ({p.returncode})")
    return time.perf_counter() - t, peak[0] / 1024, (early[0] or 0) / 1024, out


def cs(host, prefix, *args):
    """Runs our CLI (see run_cli); returns (seconds, peak RSS MiB (VmHWM), stdout)."""
    secs, peak, _, out = run_cli(host, prefix, *args)
    return secs, peak, out


# ------------------------------------------------------------------ the opensearch-py loops
def opensearch(host, timeout):
    from opensearchpy import OpenSearch

    return OpenSearch([host], timeout=timeout)


def published_records(client, prefix):
    """The sources of the published records of ``prefix`` (helpers.scan)."""
    from opensearchpy import helpers

    for hit in helpers.scan(
        client, index=f"{prefix}rdmrecords-records", query={"query": {"term": {"is_published": True}}}
    ):
        yield hit["_source"]


def timed_streaming_bulk(client, actions, refresh=None):
    """Writes ``actions`` with helpers.streaming_bulk, then refreshes the ``refresh`` indices
    (if given); returns (seconds, documents written)."""
    from opensearchpy import helpers

    t = time.perf_counter()
    ok = sum(1 for success, _ in helpers.streaming_bulk(client, actions, raise_on_error=False) if success)
    if refresh:
        client.indices.refresh(index=refresh)
    return time.perf_counter() - t, ok
