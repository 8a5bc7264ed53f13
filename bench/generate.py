"""Benchmark of event generation (not a test). One run, side by side on the same node and
data, ratios printed:

  usage events:     ours (generate-usage-events)  vs  (a) raw _bulk of pre-built NDJSON with
                    the same documents (the ceiling)  vs  (b) a Python loop with opensearch-py
                    streaming_bulk building the same kind of documents
  community events: ours (generate-community-events)  vs  the same Python loop style

    python bench/generate.py --search-host http://127.0.0.1:9200 [--records 10000] [--events-per-record 50]
                             [--backfill-records 100000] [--repeat 3]

The default sizes are the issue's: 10,000 records x 50 views (+50 downloads for records with
files) ~ 1,000,000 events; community-event backfill of 100,000 records. Each contender's
CPU seconds per million events are printed for its client process and for the node.
"""

import argparse
import hashlib
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import count, cs, delete, http  # noqa: E402


def export_ndjson(host, pattern, path):
    """The documents of ``pattern`` as bulk NDJSON (index actions with the same _index/_id)."""
    n = 0
    indices = [row["index"] for row in http("GET", f"{host}/_cat/indices/{pattern}?format=json&h=index")]
    with open(path, "w") as f:
        for index in sorted(indices):
            after = None
            while True:
                body = {"size": 5000, "sort": [{"timestamp": "asc"}, {"visitor_id": "asc"}], "query": {"match_all": {}}}
                if after:
                    body["search_after"] = after
                hits = http("POST", f"{host}/{index}/_search", body)["hits"]["hits"]
                for h in hits:
                    f.write(json.dumps({"index": {"_index": h["_index"], "_id": h["_id"]}}) + "\n")
                    f.write(json.dumps(h["_source"]) + "\n")
                    n += 1
                if len(hits) < 5000:
                    break
                after = hits[-1]["sort"]
    return n


def raw_bulk(host, path, batch=2000, in_flight=3):
    """POST the NDJSON in batches of ``batch`` docs with ``in_flight`` concurrent requests."""

    def chunks():
        lines = []
        with open(path) as f:
            for line in f:
                lines.append(line)
                if len(lines) >= 2 * batch:
                    yield "".join(lines).encode()
                    lines = []
        if lines:
            yield "".join(lines).encode()

    t = time.perf_counter()
    errors = 0

    def settle(reply):
        nonlocal errors
        errors += 1 if reply.get("errors") else 0

    common.post_bulks(host, chunks(), in_flight, settle)
    return time.perf_counter() - t, errors


def bucket_id(record):
    """The record's bucket id as generate-usage-events takes it: the record's or its files',
    else derived from the record id (a real records index holds none)."""
    return (
        record.get("bucket_id")
        or (record.get("files") or {}).get("bucket_id")
        or str(uuid.uuid5(uuid.NAMESPACE_URL, f"invenio-community-stats:bucket:{record['id']}"))
    )


def python_usage_loop(host, prefix, per_record, end="2025-12-31T23:59:59"):
    """What an operator would write: scan the records, build events in Python, streaming_bulk."""
    client = common.opensearch(host, 120)
    rng = random.Random(1)
    end_ts = time.mktime(time.strptime(end, "%Y-%m-%dT%H:%M:%S"))

    def actions():
        for r in common.published_records(client, prefix):
            created = time.mktime(time.strptime(r["created"][:19], "%Y-%m-%dT%H:%M:%S"))
            entries = (r.get("files") or {}).get("entries") or []
            kinds = ["view"] + (["download"] if entries else [])
            for kind in kinds:
                for _ in range(per_record):
                    ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(rng.uniform(created, end_ts)))
                    visitor = f"{rng.getrandbits(224):056x}"
                    doc = {
                        "timestamp": ts,
                        "recid": r["id"],
                        "parent_recid": r["parent"]["id"],
                        "visitor_id": visitor,
                        "unique_session_id": hashlib.sha1((visitor + ts[:13]).encode()).hexdigest(),
                        "country": "US",
                        "is_robot": False,
                        "is_machine": False,
                        "via_api": False,
                        "updated_timestamp": ts,
                    }
                    if kind == "view":
                        doc["unique_id"] = f"ui_{r['id']}"
                        index = f"{prefix}events-stats-record-view-{ts[:7]}"
                    else:
                        e = rng.choice(entries)
                        bucket = bucket_id(r)
                        doc.update(
                            bucket_id=bucket,
                            file_id=e["file_id"],
                            file_key=e["key"],
                            size=e["size"],
                            unique_id=f"{bucket}_{e['file_id']}",
                        )
                        index = f"{prefix}events-stats-file-download-{ts[:7]}"
                    _id = ts[:18] + "0-" + hashlib.sha1((doc["unique_id"] + visitor).encode()).hexdigest()
                    yield {"_op_type": "create", "_index": index, "_id": _id, "_source": doc}

    return common.timed_streaming_bulk(client, actions(), refresh=f"{prefix}events-stats-*")


def python_community_loop(host, prefix):
    client = common.opensearch(host, 120)
    now = time.strftime("%Y-%m-%dT%H:%M:%S")

    def actions():
        for r in common.published_records(client, prefix):
            for c in ["global", *((r["parent"].get("communities") or {}).get("ids") or [])]:
                yield {
                    "_op_type": "create",
                    "_index": f"{prefix}stats-community-events-{r['created'][:4]}",
                    "_id": f"{r['id']}-{c}-added",
                    "_source": {
                        "record_id": r["id"],
                        "community_id": c,
                        "event_type": "added",
                        "event_date": r["created"],
                        "record_created_date": r["created"],
                        "is_deleted": bool(r.get("is_deleted")),
                        "timestamp": now,
                        "updated_timestamp": now,
                    },
                }

    return common.timed_streaming_bulk(client, actions(), refresh=f"{prefix}stats-community-events-*")


def rate_line(what, n, secs, more=""):
    return f"{what} {n:9d} docs in {secs:7.1f} s = {n / secs:9.0f} docs/s{more}"


def main():
    ap = argparse.ArgumentParser()
    common.add_search_host(ap, "http://127.0.0.1:9200")
    ap.add_argument("--records", type=int, default=10_000)
    ap.add_argument("--events-per-record", type=int, default=50)
    ap.add_argument("--backfill-records", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3, help="rounds of ours vs raw _bulk (medians compared)")
    a = ap.parse_args()
    host = a.search_host.rstrip("/")
    p = "bench-gen-"
    delete(host, f"{p}*")
    print(f"node {host}: {common.node_version(host)}")
    cs(host, p, "load-sample-data", "--records", str(a.records), "--events-per-record", "0", "--end-date", "2025-12-31")
    args = ["generate-usage-events", "--events-per-record", str(a.events_per_record), "--event-end-date", "2025-12-31"]
    # Warm the node up (JIT, index creation paths) so that whichever runs first is not penalised.
    cs(host, p, "generate-usage-events", "--events-per-record", "5", "--event-end-date", "2025-12-31", "--seed", "999")
    delete(host, f"{p}events-stats-*")

    # Ours and the raw _bulk alternate, --repeat rounds each (the node's merges make single
    # runs vary by +-10 %); the medians are compared. Both end with their documents
    # acknowledged and searchable: ours refreshes the indices it wrote, so the raw
    # baseline's time includes the same _refresh.
    ours_runs, raw_runs, rss, cpu_ours, cpu_raw = [], [], 0.0, [], []
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "events.ndjson")
        for round_no in range(a.repeat):
            delete(host, f"{p}events-stats-*")
            with common.CpuMeter(host) as cpu:
                secs, peak, out = cs(host, p, *args, "--json")
            cpu_ours.append(cpu)
            rss = max(rss, peak)
            ours_n = count(host, f"{p}events-stats-*", refresh=True)
            ours_runs.append(secs)
            print(rate_line(f"usage events, ours, run {round_no + 1}:   ", ours_n, secs, f" (peak RSS {peak:.0f} MiB)"))
            if round_no == 0:
                export_ndjson(host, f"{p}events-stats-*", path)
            delete(host, f"{p}events-stats-*")
            # Same templates in place (ours installed them); same batch size and concurrency as ours.
            with common.CpuMeter(host) as cpu:
                secs_a, errors = raw_bulk(host, path)
                t = time.perf_counter()
                http("POST", f"{host}/{p}events-stats-*/_refresh")
                secs_a += time.perf_counter() - t
            cpu_raw.append(cpu)
            a_n = count(host, f"{p}events-stats-*", refresh=True)
            raw_runs.append(secs_a)
            print(
                rate_line(
                    f"usage events, raw _bulk, run {round_no + 1}:", a_n, secs_a, f" ({errors} requests with errors)"
                )
            )
    ours_rate = ours_n / statistics.median(ours_runs)
    a_rate = a_n / statistics.median(raw_runs)
    print(
        f"usage events, ours (median):    {ours_rate:9.0f} docs/s; raw _bulk (median): {a_rate:9.0f} docs/s; "
        f"peak RSS {rss:.0f} MiB"
    )
    delete(host, f"{p}events-stats-*")

    with common.CpuMeter(host) as cpu_b:
        secs_b, ok = python_usage_loop(host, p, a.events_per_record)
    b_rate = ok / secs_b
    print(rate_line("usage events, Python loop:   ", ok, secs_b))
    print(
        f"ratio ours / raw _bulk = {ours_rate / a_rate:.2f} (goal >= 0.9); "
        f"ours / Python loop = {ours_rate / b_rate:.1f}x (goal >= 5)"
    )
    # Medians over the rounds. Our CLI is a child process; the raw _bulk (pre-built NDJSON,
    # threads posting it) and the Python loop run in this one.
    ours_client = statistics.median(c.children for c in cpu_ours)
    print(common.cpu_line("ours:", ours_client, statistics.median(c.node for c in cpu_ours), ours_n))
    print(
        common.cpu_line(
            "raw _bulk (pre-built):",
            statistics.median(c.own for c in cpu_raw),
            statistics.median(c.node for c in cpu_raw),
            a_n,
        )
    )
    print(common.cpu_line("Python loop:", cpu_b.own, cpu_b.node, ok))
    print(f"client CPU ours / Python loop = {ours_client / ours_n / (cpu_b.own / ok):.3f} (goal <= 0.1)")
    delete(host, f"{p}*")

    if a.backfill_records:
        q = "bench-ce-"
        delete(host, f"{q}*")
        cs(
            host,
            q,
            "load-sample-data",
            "--records",
            str(a.backfill_records),
            "--events-per-record",
            "0",
            "--communities",
            "20",
        )
        with common.CpuMeter(host) as cpu_c:
            secs_c, rss_c, out = cs(host, q, "generate-community-events", "--json")
        made = json.loads(out)["events_created"]
        delete(host, f"{q}stats-community-events-*")
        with common.CpuMeter(host) as cpu_d:
            secs_d, ok_d = python_community_loop(host, q)
        print(
            f"community events ({a.backfill_records} records): ours {made} events in {secs_c:.1f} s "
            f"(peak RSS {rss_c:.0f} MiB); Python loop {ok_d} in {secs_d:.1f} s; ratio {secs_d / secs_c:.1f}x faster"
        )
        print(common.cpu_line("community events, ours:", cpu_c.children, cpu_c.node, made))
        print(common.cpu_line("community events, loop:", cpu_d.own, cpu_d.node, ok_d))
        delete(host, f"{q}*")


if __name__ == "__main__":
    main()
