"""Benchmark of usage-event migration (not a test). One run, same node and data, ratios:

  (a) ours: migrate-events (enriched copy, checkpointed, verified, switched)
  (b) server-side _reindex of the same indices, no enrichment (the ceiling)
  (c) a Python loop as an operator would write it: opensearch-py helpers.scan +
      streaming_bulk with the same enrichment and per-batch record lookups
  (d) the write floor: the server's own _reindex of the documents (a) wrote (enriched, so
      larger than the legacy ones) into a scratch index under the same template: what
      writing them costs the node alone, with no client and no reads in event order

    python bench/migrate.py --search-host http://127.0.0.1:9200 [--records 10000] [--events 1000000]

Data: legacy monthly indices over 12 months generated with generate-usage-events (seeded).
Also reports our peak RSS after ~100k events and at the end, and the CPU seconds per million
events used by each client (our CLI process; the Python loop's process) and by the node.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import count, cs, delete, http  # noqa: E402


def python_loop(host, prefix, batch=1000):
    from opensearchpy import helpers

    client = common.opensearch(host, 300)
    records_index = f"{prefix}rdmrecords-records"

    def enrich(docs):
        recids = list({d["_source"]["recid"] for d in docs})
        recs = {
            h["_source"]["id"]: h["_source"]
            for h in client.search(index=records_index, body={"size": len(recids), "query": {"terms": {"id": recids}}})[
                "hits"
            ]["hits"]
        }
        ev = client.search(
            index=f"{prefix}stats-community-events", body={"size": 10000, "query": {"terms": {"record_id": recids}}}
        )
        membership = {}
        for h in ev["hits"]["hits"]:
            s = h["_source"]
            if s["community_id"] != "global":
                membership.setdefault(s["record_id"], []).append((s["event_date"], s["community_id"], s["event_type"]))
        for d in docs:
            src = dict(d["_source"])
            r = recs.get(src["recid"], {})
            md = r.get("metadata", {})
            src["resource_type"] = {k: v for k, v in (md.get("resource_type") or {}).items() if k in ("id", "title")}
            src["access_status"] = (r.get("access") or {}).get("status")
            src["publisher"] = md.get("publisher")
            src["languages"] = [{"id": x.get("id"), "title": x.get("title")} for x in md.get("languages", [])]
            src["funders"] = [f["funder"] for f in md.get("funding", []) if "funder" in f]
            comms = set()
            for date, comm, kind in sorted(membership.get(src["recid"], [])):
                if date[:10] <= src["timestamp"][:10]:
                    (comms.add if kind == "added" else comms.discard)(comm)
            src["community_ids"] = sorted(comms)
            yield {"_op_type": "index", "_index": d["_index"] + "-v2.0.0", "_id": d["_id"], "_source": src}

    def actions():
        buf = []
        for hit in helpers.scan(
            client,
            index=f"{prefix}events-stats-record-view-20*,{prefix}events-stats-file-download-20*",
            query={"query": {"match_all": {}}},
            size=batch,
        ):
            if hit["_index"].endswith("-v2.0.0"):
                continue
            buf.append(hit)
            if len(buf) >= batch:
                yield from enrich(buf)
                buf = []
        if buf:
            yield from enrich(buf)

    return common.timed_streaming_bulk(client, actions())


def write_floor(host, prefix):
    """The node's own cost of writing our migrated documents: a `_reindex` of each event
    type's targets into a scratch index under the same template (refreshed), one type after
    the other as (b) reads its sources, then deleted: seconds, documents, node CPU."""
    secs, documents, node_cpu = 0.0, 0, 0.0
    for event_type in ("record-view", "file-download"):
        source, copy = f"{prefix}events-stats-{event_type}-2*-v2.0.0", f"{prefix}events-stats-{event_type}-floorcopy"
        delete(host, copy)
        with common.CpuMeter(host) as cpu:
            t0 = time.perf_counter()
            r = http("POST", f"{host}/_reindex?refresh=true", {"source": {"index": source}, "dest": {"index": copy}})
            secs += time.perf_counter() - t0
        delete(host, copy)
        if r.get("failures") or "created" not in r:
            raise SystemExit(f"the write floor's _reindex failed: {str(r)[:600]}")
        documents += r["created"]
        node_cpu += cpu.node
    return {"seconds": secs, "documents": documents, "node_cpu": node_cpu}


def main():
    ap = argparse.ArgumentParser()
    common.add_search_host(ap, "http://127.0.0.1:9200")
    ap.add_argument("--records", type=int, default=10_000)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--batch-size", type=int, default=2000)
    a = ap.parse_args()
    host = a.search_host.rstrip("/")
    p = "bench-mig-"
    delete(host, f"{p}*")
    per_record = max(1, a.events // (2 * a.records))
    cs(host, p, "load-sample-data", "--records", str(a.records), "--events-per-record", "0", "--end-date", "2025-12-31")
    cs(host, p, "generate-community-events")
    cs(
        host,
        p,
        "generate-usage-events",
        "--events-per-record",
        str(per_record),
        "--event-start-date",
        "2025-01-01",
        "--event-end-date",
        "2025-12-31",
    )
    legacy = f"{p}events-stats-record-view-2025-*,{p}events-stats-file-download-2025-*"
    n = count(host, legacy, refresh=True)
    print(f"node {host}: {common.node_version(host)}; {n} legacy events over 12 months, {a.records} records")

    # The fixed work of each month: ours with one month at a time (the default) first, then
    # reset (the new indices and the migration states deleted), then (a) with two lanes.
    secs_1, peak_1, _ = cs(host, p, "migrate-events", "--batch-size", str(a.batch_size), "--parallel-months", "1")
    print(
        f"(a1) ours, one month at a time: {n:9d} docs in {secs_1:7.1f} s = {n / secs_1:8.0f} docs/s; "
        f"peak {peak_1:.0f} MiB"
    )
    delete(host, f"{p}events-stats-*-v2.0.0")
    delete(host, f"{p}stats-community-migration*")

    migrated = lambda: count(host, f"{p}events-stats-*-v2.0.0", refresh=True) >= 100_000  # noqa: E731
    with common.CpuMeter(host) as cpu_a:
        secs, peak, early, out = common.run_cli(
            host,
            p,
            "migrate-events",
            "--batch-size",
            str(a.batch_size),
            "--parallel-months",
            "2",
            "--json",
            field="VmRSS",
            every=0.2,
            sample_at=migrated,
        )
    report = json.loads(out)
    assert report["done"] == 24, report
    ours = n / secs
    print(
        f"(a) ours, --parallel-months 2:{n:9d} docs in {secs:7.1f} s = {ours:8.0f} docs/s; "
        f"RSS {early:.0f} MiB at 100k, peak {peak:.0f} MiB"
    )
    floor = write_floor(host, p)
    delete(host, f"{p}events-stats-*-v2.0.0")

    t = time.perf_counter()
    with common.CpuMeter(host) as cpu_b:
        http(
            "POST",
            f"{host}/_reindex?wait_for_completion=true&refresh=true",
            {"source": {"index": legacy.split(",")}, "dest": {"index": f"{p}reindexed"}, "conflicts": "proceed"},
        )
    secs_b = time.perf_counter() - t
    b = count(host, f"{p}reindexed", refresh=True)
    print(f"(b) server-side _reindex:     {b:9d} docs in {secs_b:7.1f} s = {b / secs_b:8.0f} docs/s (no enrichment)")
    delete(host, f"{p}reindexed")

    with common.CpuMeter(host) as cpu_c:
        secs_c, ok = python_loop(host, p, batch=1000)
    print(f"(c) Python scan+streaming_bulk: {ok:7d} docs in {secs_c:7.1f} s = {ok / secs_c:8.0f} docs/s")
    print(
        f"(d) write floor, _reindex of our documents: {floor['documents']:7d} docs in {floor['seconds']:7.1f} s = "
        f"{floor['documents'] / floor['seconds']:8.0f} docs/s; ours / (d) = {floor['seconds'] / secs:.2f}, "
        f"(d) / (b) = {secs_b / floor['seconds']:.2f} (the ceiling for our documents, against the legacy ones')"
    )
    print(
        f"ratio ours / _reindex = {ours / (b / secs_b):.2f} (goal >= 0.9); "
        f"ours / Python loop = {ours / (ok / secs_c):.1f}x (goal >= 5)"
    )
    # Our CLI is a child process (its CPU: the children's); the loop runs in this one.
    print(common.cpu_line("(a) ours:", cpu_a.children, cpu_a.node, n))
    print(common.cpu_line("(b) _reindex (no client):", 0.0, cpu_b.node, b))
    print(common.cpu_line("(c) Python loop:", cpu_c.own, cpu_c.node, ok))
    print(common.cpu_line("(d) write floor (no client):", 0.0, floor["node_cpu"], floor["documents"]))
    print(
        f"client CPU ours / Python loop = {cpu_a.children / n / (cpu_c.own / ok):.3f} (goal <= 0.1); "
        f"node CPU ours / _reindex = {cpu_a.node / n / (cpu_b.node / b):.2f}"
    )
    # What each (month, type) costs us beyond the server's own copy: the fixed work of a
    # month (state, refreshes, verification, switchover) shows here at small sizes.
    units = report["done"]
    print(
        f"per (month, type) beyond _reindex: {(secs - secs_b) / units * 1000:.0f} ms with 2 lanes, "
        f"{(secs_1 - secs_b) / units * 1000:.0f} ms one month at a time "
        f"({units} months x types; _reindex {secs_b / units * 1000:.0f} ms each); "
        f"ours / _reindex one month at a time = {secs_b / secs_1:.2f}"
    )
    delete(host, f"{p}*")


if __name__ == "__main__":
    main()
