"""Where a command's time goes, request by request (a measurement, not a test): runs one of
our commands through the tests' loopback proxy (tests/fault_proxy.py) in front of the node
and prints, per kind of request (method and path with months, types and ids folded), how
many were made and the time the node took to answer them (forwarding included: the proxy
adds its own latency, so the figures are upper ones).

    python bench/request_times.py --search-host http://127.0.0.1:9280 --prefix bench-mig- \\
        migrate-events --parallel-months 1

The prefix's data must exist, made as bench/migrate.py makes it (``load-sample-data``,
``generate-community-events``, ``generate-usage-events`` under that prefix; it deletes its
own at the end); the command runs standalone against it, as the benches run it, its own
output discarded.
"""

import argparse
import collections
import os
import re
import subprocess
import sys
import time

import common

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from fault_proxy import FaultProxy  # noqa: E402

FOLDS = [
    (re.compile(r"\d{4}-\d{2}"), "YYYY-MM"),
    (re.compile(r"record-view|file-download"), "TYPE"),
    (re.compile(r"/_(doc|create)/[^?]+"), r"/_\1/ID"),
    (re.compile(r"preference=_shards:\d+"), "preference=_shards:N"),
]


def kind(method, path):
    """The request with what varies between months, types and documents folded."""
    for pattern, repl in FOLDS:
        path = pattern.sub(repl, path)
    return f"{method} {path}"


def main():
    ap = argparse.ArgumentParser()
    common.add_search_host(ap, "http://127.0.0.1:9200")
    ap.add_argument("--prefix", required=True, help="the index prefix whose data the command reads")
    ap.add_argument("--rows", type=int, default=25)
    ap.add_argument("command", nargs=argparse.REMAINDER, help="our command and its options")
    a = ap.parse_args()
    timings = []
    proxy = FaultProxy(a.search_host.rstrip("/"))
    forward = proxy._forward

    def timed(method, path, headers, body):
        started = time.perf_counter()
        reply = forward(method, path, headers, body)
        timings.append((kind(method, path), time.perf_counter() - started))
        return reply

    proxy._forward = timed
    with proxy:
        env = dict(
            os.environ,
            COMMUNITY_STATS_APP_MODE="standalone",
            INVENIO_SEARCH_HOSTS=repr([proxy.url]),
            INVENIO_SEARCH_INDEX_PREFIX=a.prefix,
        )
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "invenio_community_stats", *a.command], env=env, stdout=subprocess.DEVNULL
        )
        wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"the command failed with exit code {done.returncode}")
    per_kind = collections.defaultdict(lambda: [0, 0.0])
    for k, seconds in timings:
        per_kind[k][0] += 1
        per_kind[k][1] += seconds
    print(
        f"{' '.join(a.command)}: {wall:.1f} s wall through the proxy, {len(timings)} requests, "
        f"{sum(s for _, s in timings):.1f} s answering them"
    )
    print(f"{'seconds':>8} {'requests':>8} {'ms each':>8}  request")
    for k, (n, seconds) in sorted(per_kind.items(), key=lambda kv: -kv[1][1])[: a.rows]:
        print(f"{seconds:8.2f} {n:8d} {seconds / n * 1000:8.1f}  {k[:140]}")


if __name__ == "__main__":
    main()
