"""Benchmark of event generation (not a test). One run, side by side on the same node and
data, ratios printed:

  usage events:     ours (generate-usage-events)  vs  (a) raw _bulk of pre-built NDJSON with
                    the same documents (the ceiling)  vs  (b) a Python loop with opensearch-py
                    streaming_bulk building the same kind of documents
  community events: ours (generate-community-events)  vs  the same Python loop style

    python bench/generate.py --search-host http://127.0.0.1:9200 [--records 10000] [--events-per-record 50]
                             [--backfill-records 100000] [--repeat 3]

The default sizes are the issue's: 10,000 records x 50 views (+50 downloads for records with
files) ~ 1,000,000 events; community-event backfill of 100,000 records.
"""

import argparse
import hashlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import http.client
import urllib.request
from concurrent.futures import ThreadPoolExecutor

http.client._MAXHEADERS = 100_000  # _reindex answers with one deprecation Warning header per index
HERE = os.path.dirname(os.path.abspath(__file__))


def http(method, url, body=None, ctype="application/json"):
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": ctype})
    try:
        with urllib.request.urlopen(req, timeout=600) as r:
            text = r.read()
            return json.loads(text) if text.strip() else None
    except urllib.error.HTTPError as e:
        return json.loads(e.read() or b"{}")


def cs(host, prefix, *args):
    """Runs our CLI; returns (seconds, peak RSS MiB, stdout)."""
    env = dict(os.environ, COMMUNITY_STATS_APP_MODE="standalone", INVENIO_SEARCH_HOSTS=repr([host]),
               INVENIO_SEARCH_INDEX_PREFIX=prefix)
    t = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-m", "invenio_community_stats", *args], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    peak = [0]

    def watch():
        while p.poll() is None:
            try:
                for line in open(f"/proc/{p.pid}/status"):
                    if line.startswith("VmHWM:"):
                        peak[0] = max(peak[0], int(line.split()[1]))
            except OSError:
                pass
            time.sleep(0.05)

    w = threading.Thread(target=watch)
    w.start()
    out, _ = p.communicate()
    w.join()
    if p.returncode != 0:
        raise SystemExit(f"community-stats {' '.join(args)} failed ({p.returncode})")
    return time.perf_counter() - t, peak[0] / 1024, out


def count(host, pattern):
    http("POST", f"{host}/{pattern}/_refresh?allow_no_indices=true&ignore_unavailable=true")
    return http("POST", f"{host}/{pattern}/_count?allow_no_indices=true&ignore_unavailable=true")["count"]


def delete(host, pattern):
    http("DELETE", f"{host}/{pattern}?expand_wildcards=all&allow_no_indices=true&ignore_unavailable=true")


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
    with ThreadPoolExecutor(in_flight) as pool:
        futures = []
        for body in chunks():
            futures.append(pool.submit(http, "POST", f"{host}/_bulk", body, "application/x-ndjson"))
            if len(futures) >= in_flight * 2:
                errors += sum(1 for fu in futures[:in_flight] if fu.result().get("errors"))
                futures = futures[in_flight:]
        errors += sum(1 for fu in futures if fu.result().get("errors"))
    return time.perf_counter() - t, errors


def python_usage_loop(host, prefix, per_record, end="2025-12-31T23:59:59"):
    """What an operator would write: scan the records, build events in Python, streaming_bulk."""
    from opensearchpy import OpenSearch, helpers

    client = OpenSearch([host], timeout=120)
    rng = random.Random(1)
    end_ts = time.mktime(time.strptime(end, "%Y-%m-%dT%H:%M:%S"))

    def actions():
        for hit in helpers.scan(client, index=f"{prefix}rdmrecords-records", query={"query": {"term": {"is_published": True}}}):
            r = hit["_source"]
            created = time.mktime(time.strptime(r["created"][:19], "%Y-%m-%dT%H:%M:%S"))
            entries = (r.get("files") or {}).get("entries") or []
            kinds = ["view"] + (["download"] if entries else [])
            for kind in kinds:
                for _ in range(per_record):
                    ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(rng.uniform(created, end_ts)))
                    visitor = "%056x" % rng.getrandbits(224)
                    doc = {"timestamp": ts, "recid": r["id"], "parent_recid": r["parent"]["id"], "visitor_id": visitor,
                           "unique_session_id": hashlib.sha1((visitor + ts[:13]).encode()).hexdigest(),
                           "country": "US", "is_robot": False, "is_machine": False, "via_api": False,
                           "updated_timestamp": ts}
                    if kind == "view":
                        doc["unique_id"] = f"ui_{r['id']}"
                        index = f"{prefix}events-stats-record-view-{ts[:7]}"
                    else:
                        e = rng.choice(entries)
                        doc.update(bucket_id=r["bucket_id"], file_id=e["file_id"], file_key=e["key"], size=e["size"],
                                   unique_id=f"{r['bucket_id']}_{e['file_id']}")
                        index = f"{prefix}events-stats-file-download-{ts[:7]}"
                    _id = ts[:18] + "0-" + hashlib.sha1((doc["unique_id"] + visitor).encode()).hexdigest()
                    yield {"_op_type": "create", "_index": index, "_id": _id, "_source": doc}

    t = time.perf_counter()
    ok = sum(1 for success, _ in helpers.streaming_bulk(client, actions(), raise_on_error=False) if success)
    client.indices.refresh(index=f"{prefix}events-stats-*")
    return time.perf_counter() - t, ok


def python_community_loop(host, prefix):
    from opensearchpy import OpenSearch, helpers

    client = OpenSearch([host], timeout=120)
    now = time.strftime("%Y-%m-%dT%H:%M:%S")

    def actions():
        for hit in helpers.scan(client, index=f"{prefix}rdmrecords-records", query={"query": {"term": {"is_published": True}}}):
            r = hit["_source"]
            for c in ["global", *r["parent"]["communities"]["ids"]]:
                yield {"_op_type": "create", "_index": f"{prefix}stats-community-events-{r['created'][:4]}",
                       "_id": f"{r['id']}-{c}-added",
                       "_source": {"record_id": r["id"], "community_id": c, "event_type": "added", "event_date": r["created"],
                                   "record_created_date": r["created"], "is_deleted": bool(r.get("is_deleted")),
                                   "timestamp": now, "updated_timestamp": now}}

    t = time.perf_counter()
    ok = sum(1 for success, _ in helpers.streaming_bulk(client, actions(), raise_on_error=False) if success)
    client.indices.refresh(index=f"{prefix}stats-community-events-*")
    return time.perf_counter() - t, ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--search-host", default=os.environ.get("COMMUNITY_STATS_BENCH_SEARCH_HOST", "http://127.0.0.1:9200"))
    ap.add_argument("--records", type=int, default=10_000)
    ap.add_argument("--events-per-record", type=int, default=50)
    ap.add_argument("--backfill-records", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3, help="rounds of ours vs raw _bulk (medians compared)")
    a = ap.parse_args()
    host = a.search_host.rstrip("/")
    p = "bench-gen-"
    delete(host, f"{p}*")
    print(f"node {host}: {http('GET', host)['version']['number']}")
    cs(host, p, "load-sample-data", "--records", str(a.records), "--events-per-record", "0", "--end-date", "2025-12-31")
    args = ["generate-usage-events", "--events-per-record", str(a.events_per_record), "--event-end-date", "2025-12-31"]
    # Warm the node up (JIT, index creation paths) so that whichever runs first is not penalised.
    cs(host, p, "generate-usage-events", "--events-per-record", "5", "--event-end-date", "2025-12-31", "--seed", "999")
    delete(host, f"{p}events-stats-*")

    # Ours and the raw _bulk alternate, --repeat rounds each (the node's merges make single
    # runs vary by +-10 %); the medians are compared. Both end with their documents
    # acknowledged and searchable: ours refreshes the indices it wrote, so the raw
    # baseline's time includes the same _refresh.
    ours_runs, raw_runs, rss = [], [], 0.0
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "events.ndjson")
        for round_no in range(a.repeat):
            delete(host, f"{p}events-stats-*")
            secs, peak, out = cs(host, p, *args, "--json")
            rss = max(rss, peak)
            ours_n = count(host, f"{p}events-stats-*")
            ours_runs.append(secs)
            print(f"usage events, ours, run {round_no + 1}:    {ours_n:9d} docs in {secs:7.1f} s = {ours_n / secs:9.0f} docs/s (peak RSS {peak:.0f} MiB)")
            if round_no == 0:
                n = export_ndjson(host, f"{p}events-stats-*", path)
            delete(host, f"{p}events-stats-*")
            # Same templates in place (ours installed them); same batch size and concurrency as ours.
            secs_a, errors = raw_bulk(host, path)
            t = time.perf_counter()
            http("POST", f"{host}/{p}events-stats-*/_refresh")
            secs_a += time.perf_counter() - t
            a_n = count(host, f"{p}events-stats-*")
            raw_runs.append(secs_a)
            print(f"usage events, raw _bulk, run {round_no + 1}: {a_n:9d} docs in {secs_a:7.1f} s = {a_n / secs_a:9.0f} docs/s ({errors} requests with errors)")
    ours_rate = ours_n / statistics.median(ours_runs)
    a_rate = a_n / statistics.median(raw_runs)
    print(f"usage events, ours (median):    {ours_rate:9.0f} docs/s; raw _bulk (median): {a_rate:9.0f} docs/s; peak RSS {rss:.0f} MiB")
    delete(host, f"{p}events-stats-*")

    secs_b, ok = python_usage_loop(host, p, a.events_per_record)
    b_rate = ok / secs_b
    print(f"usage events, Python loop:    {ok:9d} docs in {secs_b:7.1f} s = {b_rate:9.0f} docs/s")
    print(f"ratio ours / raw _bulk = {ours_rate / a_rate:.2f} (goal >= 0.9); ours / Python loop = {ours_rate / b_rate:.1f}x (goal >= 5)")
    delete(host, f"{p}*")

    if a.backfill_records:
        q = "bench-ce-"
        delete(host, f"{q}*")
        cs(host, q, "load-sample-data", "--records", str(a.backfill_records), "--events-per-record", "0", "--communities", "20")
        secs_c, rss_c, out = cs(host, q, "generate-community-events", "--json")
        made = json.loads(out)["events_created"]
        delete(host, f"{q}stats-community-events-*")
        secs_d, ok_d = python_community_loop(host, q)
        print(f"community events ({a.backfill_records} records): ours {made} events in {secs_c:.1f} s (peak RSS {rss_c:.0f} MiB); "
              f"Python loop {ok_d} in {secs_d:.1f} s; ratio {secs_d / secs_c:.1f}x faster")
        delete(host, f"{q}*")


if __name__ == "__main__":
    main()
