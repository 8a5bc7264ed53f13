"""Benchmark of the usage aggregation (not a test). One run, side by side on the same node and
data, ratios printed:

  (a) ours:     community-stats aggregate --aggregation-type community-usage-delta-agg
                --aggregation-type community-usage-snapshot-agg --start-date 2025-01-01
                --end-date 2025-12-31 --ignore-bookmark --json   (a subprocess)
  (b) baseline: the reference's algorithm as Python (spec C.5/C.6): per community (and
                "global"), per day, 2 searches (views, downloads) with the metric and the
                subcount aggregations, helpers.bulk of the delta documents, then a snapshot
                pass reading the deltas back in date order and writing cumulative documents.
                Run on --baseline-communities N of the communities ("global" + N-1) and
                extrapolated linearly to all of them (printed as such), or on all of them
                with --full-baseline.

    python bench/aggregate.py --search-host http://127.0.0.1:9280 [--events 1000000]
        [--records 10000] [--communities 100] [--baseline-communities 10 | --full-baseline]
        [--regenerate] [--scope all|communities|global] [--ours-env KEY=VALUE] [--json]

Data (bench/aggregate_data.py): one year (2025) of enriched usage events (views ~70 %,
downloads ~30 %) written straight into the v2 monthly indices with the package's templates,
and the communities (opted in to the dashboard). Kept between runs: the data is reused when
the prefix already holds exactly the same data set (--regenerate forces a rebuild).

--scope communities / global runs both contenders on the communities without global / on
global alone (ours then gets --community-id). Also sampled while each contender runs: the
node's peak heap use and the request circuit-breaker trips.

Also compares the documents: our deltas against the exact per-day counts of the generated
events ("truth") and against the baseline's documents (unique counts, subcounts), and the
last snapshot of each compared community.

Needs a node: scripts/opensearch start --port 9280 --heap 2g --data-dir /tmp/cs-bench-os
"""

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import aggregate_data as data  # noqa: E402
from aggregate_data import count, delete, fmt, http, run_measured, shard_queries  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
CLI = os.path.join(REPO, ".venv", "bin", "community-stats")
AGG_TYPES = ("community-usage-delta-agg", "community-usage-snapshot-agg")

# Usage subcounts as the reference configures them (spec C.5): key, terms field(s), label
# field (top_hits label source) or None, snapshot type ("all": every item; "top": top N).
SUBCOUNTS = [
    ("resource_types", ["resource_type.id"], "resource_type.title", "all"),
    ("access_statuses", ["access_status"], None, "all"),
    ("file_types", ["file_types"], None, "all"),
    ("languages", ["languages.id"], "languages.title", "top"),
    ("rights", ["rights.id"], "rights.title", "top"),
    ("funders", ["funders.id", "funders.name"], "funders.name", "top"),
    ("periodicals", ["journal_title"], None, "top"),
    ("publishers", ["publisher"], None, "top"),
    ("affiliations", ["affiliations.id"], "affiliations.name", "top"),
    ("countries", ["country"], None, "top"),
]
TOP_N = 20
VIEW_METRICS = ("total_events", "unique_visitors", "unique_records", "unique_parents")
DOWNLOAD_METRICS = VIEW_METRICS + ("unique_files", "total_volume")


def log(*a):
    print(*a, file=LOG, flush=True)


LOG = sys.stdout


class NodeWatch:
    """Samples the node while a contender runs: peak heap %, request-breaker trips, and
    whether searches still answer (a node that ran out of heap can keep answering `GET /`
    while its search threads are gone)."""

    def __init__(self, host, every=5.0):
        self.host, self.every = host, every
        self.peak_heap, self.samples = 0, 0
        self._stop = threading.Event()
        self.trips0 = self._trips()

    def _stats(self):
        try:
            return http("GET", f"{self.host}/_nodes/stats/jvm,breaker", timeout=10)["nodes"].values()
        except Exception:  # noqa: BLE001
            return []

    def _trips(self):
        return sum(n["breakers"]["request"]["tripped"] for n in self._stats())

    def __enter__(self):
        def run():
            while not self._stop.wait(self.every):
                for n in self._stats():
                    self.peak_heap = max(self.peak_heap, n["jvm"]["mem"]["heap_used_percent"])
                    self.samples += 1
        self._t = threading.Thread(target=run, daemon=True)
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.trips = self._trips() - self.trips0

    def as_dict(self):
        return {"node_heap_peak_percent": self.peak_heap, "request_breaker_trips": self.trips}


def searches_answer(host):
    try:
        r = http("POST", f"{host}/_search?size=0&timeout=5s", {"query": {"match_all": {}}}, timeout=20)
        return "hits" in (r or {})
    except Exception:  # noqa: BLE001
        return False


# ------------------------------------------------------------------ (a) ours
def core_build():
    """mtime and size of the installed Rust core (the lead rebuilds it while benches run)."""
    try:
        from invenio_community_stats import _core

        st = os.stat(_core.__file__)
        return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(st.st_mtime))}Z {st.st_size} bytes"
    except Exception as e:  # noqa: BLE001
        return f"unknown ({e})"


def ours_available():
    if not os.path.exists(CLI):
        return False, f"{CLI} not found"
    r = subprocess.run([CLI, "aggregate", "--help"], capture_output=True, text=True)
    return r.returncode == 0, (r.stderr or r.stdout).strip().splitlines()[-1:] if r.returncode else ""


def run_ours(host, prefix, extra, env_pairs=(), community_ids=None, timeout=None):
    delete(host, f"{prefix}stats-community-usage-delta-*")
    delete(host, f"{prefix}stats-community-usage-snapshot-*")
    cmd = [CLI, "--search-host", host, "--index-prefix", prefix, "aggregate"]
    for t in AGG_TYPES:
        cmd += ["--aggregation-type", t]
    cmd += ["--start-date", data.START.isoformat(), "--end-date", data.END.isoformat(), "--ignore-bookmark", "--json"]
    if community_ids:
        cmd += ["--community-id", ",".join(community_ids)]
    cmd += list(extra)
    env = dict(os.environ)
    for pair in env_pairs:
        k, _, v = pair.partition("=")
        env[k] = v
    before = shard_queries(host)
    with NodeWatch(host) as watch:
        secs, rss, rc, out, err = run_measured(cmd, env=env, timeout=timeout)
    after = shard_queries(host)
    shown = " ".join(cmd) if len(" ".join(cmd)) < 400 else " ".join(cmd)[:400] + " ..."
    res = {"command": shown, "env": list(env_pairs), "seconds": secs, "peak_rss_mib": rss, "returncode": rc,
           "shard_queries": after - before, **watch.as_dict()}
    if rc != 0:
        res["searches_still_answer"] = searches_answer(host)
    if rc != 0:
        res["error"] = (err or out).strip()[-2000:]
        return res
    try:
        report = json.loads(out)
    except ValueError:
        # Tolerate log lines before the JSON document.
        report = None
        start = out.find("{")
        if start >= 0:
            try:
                report = json.loads(out[start:])
            except ValueError:
                pass
    res["report"] = report
    res["searches"] = report.get("searches") if isinstance(report, dict) else None
    http("POST", f"{host}/{prefix}stats-community-usage-*/_refresh?allow_no_indices=true&ignore_unavailable=true")
    res["delta_docs"] = count(host, f"{prefix}stats-community-usage-delta-*")
    res["snapshot_docs"] = count(host, f"{prefix}stats-community-usage-snapshot-*")
    res["docs"] = res["delta_docs"] + res["snapshot_docs"]
    if err.strip():
        res["stderr_tail"] = err.strip()[-1500:]
    return res


# ------------------------------------------------------------------ (b) baseline (worker)
class Counter:
    def __init__(self):
        self.searches = 0
        self.bulk_requests = 0
        self.other_requests = 0  # existence checks of the documents


def delta_query(community, day, kind):
    """The reference's CommunityUsageDeltaQuery body for one day (spec C.5)."""
    metrics = {
        "total_events": {"value_count": {"field": "_id"}},
        "unique_visitors": {"cardinality": {"field": "visitor_id"}},
        "unique_records": {"cardinality": {"field": "recid"}},
        "unique_parents": {"cardinality": {"field": "parent_recid"}},
    }
    if kind == "download":
        metrics["unique_files"] = {"cardinality": {"field": "file_id"}}
        metrics["total_volume"] = {"sum": {"field": "size"}}
    aggs = dict(metrics)
    for key, fields, label_field, _ in SUBCOUNTS:
        for f in fields:
            name = f"{key}_{f.split('.')[-1]}" if len(fields) > 1 else key
            sub = {"terms": {"field": f, "size": 1000}, "aggs": dict(metrics)}
            if label_field:
                id_field = fields[0]
                sub["aggs"]["label"] = {"top_hits": {"size": 1, "_source": {"includes": [label_field, id_field]}}}
            aggs[name] = sub
    must = [{"range": {"timestamp": {"gte": f"{day}T00:00:00", "lt": f"{day}T23:59:59"}}}]  # sic: lt 23:59:59
    if community != "global":
        must.append({"term": {"community_ids": community}})
    return {"size": 1, "query": {"bool": {"must": must}}, "aggs": aggs}


def _path(src, path):
    cur = src
    for part in path.split("."):
        if isinstance(cur, list):
            return cur
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def _label(bucket, key, fields, label_field):
    """Label from the top_hits source: the array item whose id (or name) is the bucket key."""
    is_title = label_field.endswith(".title")
    hits = bucket.get("label", {}).get("hits", {}).get("hits", [])
    if hits:
        base, leaf = label_field.rsplit(".", 1)
        obj = _path(hits[0]["_source"], base)
        items = obj if isinstance(obj, list) else [obj] if isinstance(obj, dict) else []
        for it in items:
            if isinstance(it, dict) and (it.get("id") == key or it.get(leaf) == key):
                if it.get(leaf) is not None:
                    return it[leaf]
    return {"en": key} if is_title else key


def _metrics(aggs, kind):
    """Metrics of a reply or a bucket (a bucket's total_events is its doc_count, as in the
    reference). Integers (the sum agg answers floats): the dynamic mapping stays `long`."""
    names = VIEW_METRICS if kind == "view" else DOWNLOAD_METRICS
    out = {m: int(round(aggs[m]["value"] or 0)) for m in names}
    if "doc_count" in aggs:
        out["total_events"] = aggs["doc_count"]
    return out


def _zero(kind):
    return {m: 0 for m in (VIEW_METRICS if kind == "view" else DOWNLOAD_METRICS)}


def build_delta(community, day, replies):
    """The delta document from the two replies (spec C.5), with `total_events` from
    hits.total.value as in the reference. Funders: the reference's assembly loses them (it
    looks for `funders`, the query names them `funders_id`/`funders_name`); here they are
    merged by id (name buckets whose name is a known id's label are folded in), i.e. the
    intended result, so that they can be compared with ours."""
    totals, subcounts = {}, {}
    for kind in ("view", "download"):
        r = replies[kind]
        m = _metrics(r["aggregations"], kind)
        m["total_events"] = r["hits"]["total"]["value"]
        totals[kind] = m
    for key, fields, label_field, _ in SUBCOUNTS:
        items = {}
        for kind in ("view", "download"):
            aggs = replies[kind]["aggregations"]
            names = [f"{key}_{f.split('.')[-1]}" for f in fields] if len(fields) > 1 else [key]
            seen_labels = set()
            for n_i, name in enumerate(names):
                for b in aggs[name]["buckets"]:
                    k = b["key"]
                    label = _label(b, k, fields, label_field) if label_field else str(k)  # reference: str(key)
                    if n_i > 0 and k in seen_labels:
                        continue  # the name bucket of an item already counted by id
                    if n_i == 0 and isinstance(label, str):
                        seen_labels.add(label)
                    it = items.setdefault(k, {"id": k, "label": label, "view": _zero("view"), "download": _zero("download")})
                    it[kind] = _metrics(b, kind)
        subcounts[key] = sorted(items.values(), key=lambda i: str(i["id"]))
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return {"community_id": community, "period_start": f"{day}T00:00:00", "period_end": f"{day}T23:59:59",
            "timestamp": now, "totals": totals, "subcounts": subcounts}


BASELINE_MAPPING = {
    "settings": {"index": {"number_of_shards": 1, "number_of_replicas": 0}},
    "mappings": {"dynamic": True, "date_detection": False, "dynamic_templates": [
        {"numbers": {"match_mapping_type": "double", "mapping": {"type": "long"}}}], "properties": {
        "community_id": {"type": "keyword"}, "period_start": {"type": "date", "format": "strict_date_hour_minute_second"},
        "period_end": {"type": "date", "format": "strict_date_hour_minute_second"},
        "snapshot_date": {"type": "date", "format": "strict_date_hour_minute_second"},
        "timestamp": {"type": "date", "format": "strict_date_hour_minute_second"},
        "updated_timestamp": {"type": "date", "format": "strict_date_hour_minute_second"}}},
}


def baseline_worker(host, prefix, communities):
    """The reference's sequential loop; prints a JSON report with per-community figures."""
    from opensearchpy import OpenSearch, helpers

    client = OpenSearch([host], timeout=300)
    c = Counter()
    view_alias, dl_alias = f"{prefix}events-stats-record-view", f"{prefix}events-stats-file-download"
    delta_pat, snap_pat = f"{prefix}bench-baseline-usage-delta", f"{prefix}bench-baseline-usage-snapshot"
    delete(host, f"{delta_pat}-*")
    delete(host, f"{snap_pat}-*")
    for year in sorted({d.year for d in data.days()}):
        for pat in (delta_pat, snap_pat):
            client.indices.create(index=f"{pat}-{year}", body=BASELINE_MAPPING)
    all_days = list(data.days())
    t0 = time.perf_counter()
    # Run pre-checks (spec C.2 #2): both aliases exist, sampled events carry community_ids.
    # (#1, stats-community-events non-empty, is skipped: not needed for usage aggregation.)
    client.indices.exists(index=view_alias)
    client.indices.exists(index=dl_alias)
    client.search(index=view_alias, body={"size": 10, "query": {"match_all": {}}, "_source": ["community_ids"]})
    c.searches += 1
    out = {"communities": [], "precheck_searches": c.searches}

    def per_day(community, stats):
        for day in all_days:
            replies = {}
            for kind, index in (("view", view_alias), ("download", dl_alias)):
                replies[kind] = client.search(index=index, body=delta_query(community, day.isoformat(), kind))
                c.searches += 1
            stats["searches"] += 2
            doc = build_delta(community, day.isoformat(), replies)
            # The reference checks each document's existence first (and deletes it if found).
            index, _id = f"{delta_pat}-{day.year}", f"{community}-{day.isoformat()}"
            if client.exists(index=index, id=_id):
                client.delete(index=index, id=_id)
            c.other_requests += 1
            yield {"_op_type": "index", "_index": f"{delta_pat}-{day.year}", "_id": f"{community}-{day.isoformat()}",
                   "_source": doc}

    # Pass 1: deltas, one community after the other (spec C.2: no parallelism).
    for community in communities:
        t = time.perf_counter()
        s0 = c.searches
        stats = {"id": community, "searches": 0}
        # First/last view date (match_all for every community, spec C.2) and the skip check
        # (any event of the community in the range, in either index).
        for order in ("asc", "desc"):
            client.search(index=view_alias, body={"size": 1, "sort": [{"timestamp": order}], "_source": ["timestamp"]})
        rng = {"range": {"timestamp": {"gte": f"{all_days[0]}T00:00:00", "lte": f"{all_days[-1]}T23:59:59"}}}
        q = {"bool": {"must": [rng] + ([{"term": {"community_ids": community}}] if community != "global" else [])}}
        client.count(index=view_alias, body={"query": q})
        client.count(index=dl_alias, body={"query": q})
        c.searches += 4
        ok, errors = helpers.bulk(client, per_day(community, stats), chunk_size=50, raise_on_error=False)
        c.bulk_requests += -(-ok // 50)
        if errors:
            stats["first_error"] = json.dumps(errors[0])[:500]
        stats.update(delta_seconds=time.perf_counter() - t, delta_docs=ok, delta_errors=len(errors),
                     delta_searches=c.searches - s0)
        out["communities"].append(stats)
    client.indices.refresh(index=f"{delta_pat}-*")

    # Pass 2: snapshots (simplified C.6): per community, the dependency check (max delta
    # date), the last snapshot before the start (none with --ignore-bookmark), the scan of
    # older deltas for the "top" cache (none), then the deltas read in date order
    # (search_after, pages of 200) and one cumulative document per day: totals += delta
    # totals (every metric, as the reference does), "all" subcounts summed per id, "top"
    # subcounts summed per id and cut to the top 20 by view / by download events.
    for stats in out["communities"]:
        community = stats["id"]
        t = time.perf_counter()
        s0 = c.searches
        client.search(index=f"{delta_pat}-*", body={"size": 0, "query": {"term": {"community_id": community}},
                                                    "aggs": {"max_date": {"max": {"field": "period_start"}}}})
        client.search(index=f"{snap_pat}-*", body={"size": 1, "sort": [{"snapshot_date": "desc"}], "query": {"bool": {"must": [
            {"term": {"community_id": community}}, {"range": {"snapshot_date": {"lt": f"{all_days[0]}T00:00:00"}}}]}}})
        client.search(index=f"{delta_pat}-*", body={"size": 200, "sort": [{"period_start": "asc"}], "query": {"bool": {"must": [
            {"term": {"community_id": community}}, {"range": {"period_start": {"lt": f"{all_days[0]}T00:00:00"}}}]}}})
        c.searches += 3

        def deltas():
            after = None
            while True:
                body = {"size": 200, "sort": [{"period_start": "asc"}], "query": {"bool": {"must": [
                    {"term": {"community_id": community}},
                    {"range": {"period_start": {"gte": f"{all_days[0]}T00:00:00", "lte": f"{all_days[-1]}T23:59:59"}}}]}}}
                if after:
                    body["search_after"] = after
                hits = client.search(index=f"{delta_pat}-*", body=body)["hits"]["hits"]
                c.searches += 1
                for h in hits:
                    yield h["_source"]
                if len(hits) < 200:
                    return
                after = hits[-1]["sort"]

        def snapshots():
            totals = {"view": _zero("view"), "download": _zero("download")}
            cache = {key: {} for key, *_ in SUBCOUNTS}
            for d in deltas():
                for kind in ("view", "download"):
                    for m, v in d["totals"][kind].items():
                        totals[kind][m] += v
                subs = {}
                for key, _, _, typ in SUBCOUNTS:
                    acc = cache[key]
                    for it in d["subcounts"].get(key, []):
                        cur = acc.setdefault(it["id"], {"id": it["id"], "label": it["label"],
                                                        "view": _zero("view"), "download": _zero("download")})
                        for kind in ("view", "download"):
                            for m, v in it[kind].items():
                                cur[kind][m] += v
                    if typ == "all":
                        subs[key] = [json.loads(json.dumps(i)) for i in acc.values()]
                    else:
                        top = {}
                        for kind in ("view", "download"):
                            ranked = sorted((i for i in acc.values() if i[kind]["total_events"] > 0),
                                            key=lambda i: -i[kind]["total_events"])[:TOP_N]
                            top[f"by_{kind}"] = [json.loads(json.dumps(i)) for i in ranked]
                        subs[key] = top
                day = d["period_start"]
                now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
                yield {"_op_type": "index", "_index": f"{snap_pat}-{day[:4]}", "_id": f"{community}-{day[:10]}",
                       "_source": {"community_id": community, "snapshot_date": day, "timestamp": now,
                                   "updated_timestamp": now, "totals": json.loads(json.dumps(totals)),
                                   "subcounts": subs}}

        ok, errors = helpers.bulk(client, snapshots(), chunk_size=50, raise_on_error=False)
        c.bulk_requests += -(-ok // 50)
        if errors:
            stats["first_error"] = json.dumps(errors[0])[:500]
        stats.update(snapshot_seconds=time.perf_counter() - t, snapshot_docs=ok, snapshot_errors=len(errors),
                     snapshot_searches=c.searches - s0)
        stats["searches"] = stats["delta_searches"] + stats["snapshot_searches"]
    client.indices.refresh(index=f"{snap_pat}-*")
    out.update(seconds=time.perf_counter() - t0, searches=c.searches, bulk_requests=c.bulk_requests,
               other_requests=c.other_requests)
    print(json.dumps(out))


def run_baseline(host, prefix, communities):
    cmd = [sys.executable, os.path.abspath(__file__), "--search-host", host, "--prefix", prefix,
           "--_baseline-worker", ",".join(communities)]
    before = shard_queries(host)
    with NodeWatch(host) as watch:
        secs, rss, rc, out, err = run_measured(cmd)
    after = shard_queries(host)
    if rc != 0:
        raise SystemExit(f"baseline failed ({rc}); node heap peak {watch.peak_heap} %, request breaker trips "
                         f"{watch.trips}:\n{err[-3000:]}")
    rep = json.loads(out)
    rep.update(watch.as_dict())
    for s in rep["communities"]:
        if s.get("delta_errors") or s.get("snapshot_errors"):
            log(f"  baseline bulk errors for {s['id']}: {s.get('delta_errors')} delta, {s.get('snapshot_errors')} snapshot; "
                f"first: {s.get('first_error')}")
    rep.update(wall_seconds=secs, peak_rss_mib=rss, shard_queries=after - before)
    return rep


def extrapolate(rep, all_communities):
    """Figures for all communities from the measured subset: the measured run plus the mean
    per-community cost of the non-global communities times the ones not run."""
    done = rep["communities"]
    others = [s for s in done if s["id"] != "global"]
    missing = len(all_communities) - len(done)
    if missing <= 0 or not others:
        return {"seconds": rep["wall_seconds"], "searches": rep["searches"],
                "docs": sum(s["delta_docs"] + s["snapshot_docs"] for s in done),
                "shard_queries": rep["shard_queries"], "extrapolated": False, "measured_communities": len(done)}
    n = len(others)
    per = lambda f: sum(f(s) for s in others) / n  # noqa: E731
    per_secs = per(lambda s: s["delta_seconds"] + s["snapshot_seconds"])
    per_searches = per(lambda s: s["searches"])
    per_docs = per(lambda s: s["delta_docs"] + s["snapshot_docs"])
    # shard queries: scale the measured node delta by the searches ratio
    searches = rep["searches"] + per_searches * missing
    return {"seconds": rep["wall_seconds"] + per_secs * missing, "searches": round(searches),
            "docs": round(sum(s["delta_docs"] + s["snapshot_docs"] for s in done) + per_docs * missing),
            "shard_queries": round(rep["shard_queries"] * searches / max(1, rep["searches"])),
            "extrapolated": True, "measured_communities": len(done),
            "measured_seconds": rep["wall_seconds"], "measured_searches": rep["searches"],
            "measured_docs": sum(s["delta_docs"] + s["snapshot_docs"] for s in done)}


# ------------------------------------------------------------------ comparison
def fetch(host, index, community, date_field, size=400):
    body = {"size": size, "sort": [{date_field: "asc"}], "query": {"term": {"community_id": community}}}
    r = http("POST", f"{host}/{index}/_search?allow_no_indices=true&ignore_unavailable=true", body)
    return [h["_source"] for h in (r or {}).get("hits", {}).get("hits", [])]


def g(doc, *path, default=None):
    cur = doc
    for p in path:
        if not isinstance(cur, dict) or p not in cur:
            return default
        cur = cur[p]
    return cur


def compare(host, prefix, communities, truth, have_ours):
    """Mismatch counts (and a few examples) per check, over every day of ``communities``."""
    checks = {}

    def note(check, ok, example):
        c = checks.setdefault(check, {"compared": 0, "mismatches": 0, "examples": []})
        c["compared"] += 1
        if not ok:
            c["mismatches"] += 1
            if len(c["examples"]) < 4:
                c["examples"].append(example)

    all_days = [d.isoformat() for d in data.days()]
    for community in communities:
        t = truth.get(community)
        base = {d["period_start"][:10]: d for d in fetch(host, f"{prefix}bench-baseline-usage-delta-*", community, "period_start")}
        ours = {}
        if have_ours:
            for d in fetch(host, f"{prefix}stats-community-usage-delta-*", community, "period_start"):
                ours[str(d.get("period_start", ""))[:10]] = d
            note("ours: one delta doc per day (365)", len(ours) == len(all_days), f"{community}: {len(ours)} docs")
        for i, day in enumerate(all_days):
            b, o = base.get(day), ours.get(day)
            exp = {"view.total_events": t[0][i], "download.total_events": t[1][i], "download.total_volume": t[2][i]} if t else {}
            for name, want in exp.items():
                kind, m = name.split(".")
                if b is not None:
                    got = g(b, "totals", kind, m)
                    note(f"baseline vs truth: {name}", got == want, f"{community} {day}: baseline {got}, truth {want}")
                if have_ours:
                    got = g(o, "totals", kind, m) if o else None
                    note(f"ours vs truth: {name}", got == want, f"{community} {day}: ours {got}, truth {want}")
            if have_ours and b is not None:
                if o is None:
                    note("ours vs baseline: doc present", False, f"{community} {day}: no doc of ours")
                    continue
                for kind, ms in (("view", VIEW_METRICS[1:]), ("download", DOWNLOAD_METRICS[1:5])):
                    for m in ms:
                        x, y = g(o, "totals", kind, m), g(b, "totals", kind, m)
                        note(f"ours vs baseline: {kind}.{m}", x == y, f"{community} {day}: ours {x}, baseline {y}")
                for key, *_ in SUBCOUNTS:
                    bi = {i["id"]: i for i in g(b, "subcounts", key, default=[]) or []}
                    oi_list = g(o, "subcounts", key, default=None)
                    if not isinstance(oi_list, list):
                        note(f"ours vs baseline: subcounts.{key} per-id events", False,
                             f"{community} {day}: ours has {type(oi_list).__name__} {str(oi_list)[:80]}")
                        continue
                    oi = {i.get("id"): i for i in oi_list}
                    same = set(bi) == set(oi) and all(
                        g(oi[k], kind, "total_events") == g(bi[k], kind, "total_events") for k in bi for kind in ("view", "download"))
                    diff = ""
                    if not same:
                        only_b, only_o = sorted(set(bi) - set(oi))[:3], sorted(set(oi) - set(bi))[:3]
                        bad = [k for k in set(bi) & set(oi) if any(
                            g(oi[k], kind, "total_events") != g(bi[k], kind, "total_events") for kind in ("view", "download"))][:2]
                        diff = (f"{community} {day}: only baseline {only_b}, only ours {only_o}, differing "
                                + "; ".join(f"{k}: ours v{g(oi[k], 'view', 'total_events')}/d{g(oi[k], 'download', 'total_events')}"
                                            f" base v{g(bi[k], 'view', 'total_events')}/d{g(bi[k], 'download', 'total_events')}" for k in bad))
                    note(f"ours vs baseline: subcounts.{key} per-id events", same, diff)
                    bl = {i["id"]: i.get("label") for i in bi.values()}
                    ol = {i.get("id"): i.get("label") for i in oi.values()}
                    lab_same = all(ol.get(k) == v for k, v in bl.items() if k in ol)
                    note(f"ours vs baseline: subcounts.{key} labels", lab_same,
                         f"{community} {day}: " + "; ".join(f"{k}: ours {ol.get(k)!r} base {v!r}" for k, v in bl.items() if ol.get(k) != v)[:200])
        # The last snapshot: cumulative totals.
        last = all_days[-1]
        bs = fetch(host, f"{prefix}bench-baseline-usage-snapshot-*", community, "snapshot_date")
        bs = bs[-1] if bs else None
        if t:
            want = {"view.total_events": sum(t[0]), "download.total_events": sum(t[1]), "download.total_volume": sum(t[2])}
            for name, w in want.items():
                kind, m = name.split(".")
                if bs:
                    got = g(bs, "totals", kind, m)
                    note(f"baseline snapshot {last} vs truth: {name}", got == w, f"{community}: baseline {got}, truth {w}")
        if have_ours:
            os_ = fetch(host, f"{prefix}stats-community-usage-snapshot-*", community, "snapshot_date")
            note("ours: one snapshot doc per day (365)", len(os_) == len(all_days), f"{community}: {len(os_)} docs")
            o_last = os_[-1] if os_ else None
            if o_last is not None and str(o_last.get("snapshot_date", ""))[:10] != last:
                note("ours: last snapshot date", False, f"{community}: {o_last.get('snapshot_date')}")
            if t:
                for name, w in want.items():
                    kind, m = name.split(".")
                    got = g(o_last, "totals", kind, m) if o_last else None
                    note(f"ours snapshot {last} vs truth: {name}", got == w, f"{community}: ours {got}, truth {w}")
            if bs and o_last:
                for kind, ms in (("view", VIEW_METRICS[1:]), ("download", DOWNLOAD_METRICS[1:5])):
                    for m in ms:
                        x, y = g(o_last, "totals", kind, m), g(bs, "totals", kind, m)
                        note(f"ours vs baseline snapshot {last}: {kind}.{m}", x == y, f"{community}: ours {x}, baseline {y}")
    return checks


# ------------------------------------------------------------------ main
def main():
    global LOG
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--search-host", default=os.environ.get("COMMUNITY_STATS_BENCH_SEARCH_HOST", "http://127.0.0.1:9280"))
    ap.add_argument("--prefix", default="bench-agg-", help="index prefix of the bench data (default bench-agg-)")
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--records", type=int, default=10_000)
    ap.add_argument("--communities", type=int, default=100)
    ap.add_argument("--baseline-communities", type=int, default=10, metavar="N",
                    help="run the baseline on 'global' + N-1 communities and extrapolate (default 10)")
    ap.add_argument("--full-baseline", action="store_true", help="run the baseline on every community")
    ap.add_argument("--regenerate", action="store_true", help="rebuild the data even if the prefix holds it")
    ap.add_argument("--skip-ours", action="store_true")
    ap.add_argument("--skip-baseline", action="store_true")
    ap.add_argument("--ours-arg", action="append", default=[], metavar="ARG",
                    help="extra argument for our aggregate command (repeatable)")
    ap.add_argument("--ours-env", action="append", default=[], metavar="KEY=VALUE",
                    help="environment for our command, e.g. INVENIO_COMMUNITY_STATS_AGGREGATION_CONCURRENCY=1")
    ap.add_argument("--ours-timeout", type=float, default=4 * 3600, metavar="SECONDS",
                    help="stop our command after this long (default 4 h)")
    ap.add_argument("--scope", choices=("all", "communities", "global"), default="all",
                    help="all: every opted-in community and global (default); communities: without global "
                         "(ours gets --community-id with the list); global: global only")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON (progress goes to stderr)")
    ap.add_argument("--_baseline-worker", dest="worker", help=argparse.SUPPRESS)
    a = ap.parse_args()
    host = a.search_host.rstrip("/")
    if a.worker:
        return baseline_worker(host, a.prefix, a.worker.split(","))
    if a.json:
        LOG = sys.stderr
    try:
        version = http("GET", host, timeout=10)["version"]["number"]
    except Exception as e:  # noqa: BLE001
        raise SystemExit(f"no node at {host} ({e}); start one: scripts/opensearch start --port 9280 --heap 2g "
                         f"--data-dir /tmp/cs-bench-os")
    p = a.prefix
    log(f"node {host}: OpenSearch {version}; prefix {p}; our core build {core_build()}")

    truth = None if a.regenerate else data.cached(host, p, a.events, a.records, a.communities)
    gen = None
    if truth is None:
        log(f"generating {a.events:,} events over {a.records:,} records and {a.communities} communities ...")
        secs, n, truth = data.generate(host, p, a.events, a.records, a.communities, log=log)
        gen = {"seconds": secs, "events": n}
        log(f"  {n:,} events in {secs:.1f} s ({n / secs:,.0f}/s)")
        if n != a.events:
            raise SystemExit(f"expected {a.events} events, the indices hold {n}")
    else:
        log(f"reusing the data under {p} ({a.events:,} events; --regenerate to rebuild)")
    comms = {"all": ["global", *data.community_ids(a.communities)], "communities": data.community_ids(a.communities),
             "global": ["global"]}[a.scope]
    # Warm-up: one search over everything, so that whichever runs first is not penalised.
    http("POST", f"{host}/{data.event_indices(p)}/_search", {"size": 0, "aggs": {"c": {"cardinality": {"field": "visitor_id"}}}})

    result = {"node": version, "prefix": p, "events": a.events, "records": a.records, "communities": a.communities,
              "scope": a.scope, "aggregated_communities": len(comms), "core_build": core_build(),
              "days": len(list(data.days())), "generation": gen}

    ours = None
    if not a.skip_ours:
        available, why = ours_available()
        if not available:
            log(f"(a) ours: `community-stats aggregate` is not available yet ({why}); skipped")
            result["ours"] = {"error": f"not available: {why}"}
        else:
            log("(a) ours: running community-stats aggregate ...")
            ours = run_ours(host, p, a.ours_arg, a.ours_env, None if a.scope == "all" else comms, a.ours_timeout)
            result["ours"] = {k: v for k, v in ours.items() if k != "report"}
            result["ours_report"] = ours.get("report")
            if "error" in ours:
                log(f"(a) ours FAILED (rc {ours['returncode']}) after {ours['seconds']:.1f} s; node heap peak "
                    f"{ours['node_heap_peak_percent']} %, request breaker trips {ours['request_breaker_trips']}, "
                    f"searches still answer: {ours['searches_still_answer']}:\n{ours['error'][-1500:]}")
                ours = None
                if not result["ours"].get("searches_still_answer", True):
                    log("the node no longer answers searches (out of heap?): restart it before anything else runs; "
                        "stopping here")
                    if a.json:
                        print(json.dumps(result, indent=1, default=str))
                    return 2
            else:
                log(f"    {ours['seconds']:.1f} s, {ours['docs']:,} docs, searches {ours['searches']}, "
                    f"{ours['shard_queries']:,} shard queries, peak RSS {ours['peak_rss_mib']:.0f} MiB, node heap peak "
                    f"{ours['node_heap_peak_percent']} %, request breaker trips {ours['request_breaker_trips']}")
                rep = ours.get("report")
                if isinstance(rep, dict):
                    log(f"    our report: {json.dumps({k: v for k, v in rep.items() if not isinstance(v, (dict, list))})[:600]}")
                if ours.get("stderr_tail"):
                    log(f"    our stderr (tail): {ours['stderr_tail'][-600:]}")

    base = ext = None
    subset = comms if a.full_baseline else comms[:max(1, min(a.baseline_communities, len(comms)))]
    if not a.skip_baseline:
        log(f"(b) baseline: sequential per-day Python loop over {len(subset)} of {len(comms)} communities "
            f"({', '.join(subset[:4])}{', ...' if len(subset) > 4 else ''}) ...")
        base = run_baseline(host, p, subset)
        ext = extrapolate(base, comms)
        result["baseline"] = {**ext, "peak_rss_mib": base["peak_rss_mib"], "bulk_requests": base["bulk_requests"],
                              "node_heap_peak_percent": base["node_heap_peak_percent"],
                              "request_breaker_trips": base["request_breaker_trips"],
                              "per_community": base["communities"]}
        log(f"    measured {base['wall_seconds']:.1f} s, {base['searches']:,} searches, {base['shard_queries']:,} shard queries, "
            f"peak RSS {base['peak_rss_mib']:.0f} MiB, node heap peak {base['node_heap_peak_percent']} %, "
            f"request breaker trips {base['request_breaker_trips']}")

    # ---- table
    rows = []
    if ours:
        q = ours["searches"]
        rows.append(("(a) ours: community-stats aggregate" + (f" [{' '.join(a.ours_env)}]" if a.ours_env else ""),
                     ours["seconds"], q, ours["shard_queries"], ours["docs"], ours["peak_rss_mib"],
                     ours["node_heap_peak_percent"], ours["request_breaker_trips"]))
    if ext:
        label = ("(b) baseline: per-day Python loop" +
                 (f" [EXTRAPOLATED from {ext['measured_communities']} of {len(comms)} communities]" if ext["extrapolated"] else ""))
        rows.append((label, ext["seconds"], ext["searches"], ext["shard_queries"], ext["docs"], base["peak_rss_mib"],
                     base["node_heap_peak_percent"], base["request_breaker_trips"]))
    if rows:
        w = max(len(r[0]) for r in rows)
        log("")
        what = {"all": "communities incl. global", "communities": "communities (without global)", "global": "(global only)"}
        log(f"usage aggregation (delta + snapshot), {a.events:,} events, {len(comms)} {what[a.scope]}, "
            f"{result['days']} days")
        log(f"{'run':<{w}} | {'wall s':>9} | {'searches':>9} | {'shard queries':>13} | {'docs written':>12} | {'peak RSS MiB':>12}"
            f" | {'node heap peak':>14} | {'breaker trips':>13}")
        log(f"{'-' * w}-|-{'-' * 9}-|-{'-' * 9}-|-{'-' * 13}-|-{'-' * 12}-|-{'-' * 12}-|-{'-' * 14}-|-{'-' * 13}")
        for r in rows:
            log(f"{r[0]:<{w}} | {r[1]:>9.1f} | {fmt(r[2]):>9} | {fmt(r[3]):>13} | {fmt(r[4]):>12} | {r[5]:>12.0f}"
                f" | {str(r[6]) + ' %':>14} | {r[7]:>13}")
        if ext and ext["extrapolated"]:
            log(f"  (b) measured on {ext['measured_communities']} communities: {ext['measured_seconds']:.1f} s, "
                f"{ext['measured_searches']:,} searches, {ext['measured_docs']:,} docs; extrapolated linearly "
                f"(mean of the non-global ones) to {len(comms)}")
        if ours and ext:
            ratios = {"speedup": ext["seconds"] / ours["seconds"],
                      "searches_ratio": (ext["searches"] / ours["searches"]) if ours["searches"] else None,
                      "shard_queries_ratio": ext["shard_queries"] / ours["shard_queries"] if ours["shard_queries"] else None}
            result["ratios"] = ratios
            log(f"speed-up baseline / ours = {ratios['speedup']:.1f}x; searches baseline / ours = "
                f"{fmt(ratios['searches_ratio'], '.1f')}x; shard queries baseline / ours = {fmt(ratios['shard_queries_ratio'], '.1f')}x")
        if ours and ours["searches"] is None:
            log("  (ours reported no `searches`: its column is empty; shard queries = node query_total delta, "
                "i.e. per-shard query phases, 12 monthly indices per search over an alias)")

    # ---- correctness (also on the documents of earlier runs, e.g. with --skip-ours / --skip-baseline)
    have_ours = ours is not None or (a.skip_ours and count(host, f"{p}stats-community-usage-delta-*") > 0)
    if base or count(host, f"{p}bench-baseline-usage-delta-*") > 0 or have_ours:
        compared = [s["id"] for s in base["communities"]][:10] if base else subset[:10]
        checks = compare(host, p, compared, truth, have_ours)
        result["checks"] = checks
        log("")
        log(f"document checks over {len(compared)} communities x {result['days']} days "
            f"(truth = exact counts of the generated events, 00:00:00-23:59:59 inclusive):")
        for name, c in checks.items():
            status = "ok" if not c["mismatches"] else f"{c['mismatches']} MISMATCHES"
            log(f"  {name:<58} {c['compared']:>6} compared: {status}")
            for e in c["examples"][:3] if c["mismatches"] else []:
                log(f"      e.g. {e}")
        if any(k.startswith("baseline vs truth") and v["mismatches"] for k, v in checks.items()):
            log("  (baseline vs truth mismatches are expected: the reference's range is `lt 23:59:59`, so events at "
                "23:59:59 are lost)")
    if a.json:
        print(json.dumps(result, indent=1, default=str))


if __name__ == "__main__":
    sys.exit(main())
