"""The baseline of bench/aggregate.py: the reference's usage aggregation algorithm as Python
(spec C.5/C.6), run by `aggregate.py --_baseline-worker COMMUNITIES` in a subprocess:

  - deltas, one community after the other (and "global"), per day: 2 searches (views,
    downloads) with the metric and the subcount aggregations, an existence check of the
    document, helpers.bulk (chunks of 50) of the delta documents;
  - snapshots (simplified C.6): per community, the dependency check, the last snapshot before
    the start, the older deltas for the "top" cache, then the deltas read back in date order
    (search_after, pages of 200) and one cumulative document per day.

Prints a JSON report with per-community figures (bench/aggregate_common.py, Worker).
"""

import datetime as dt
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from aggregate_common import TOP_N, Worker, deltas_query, index_action  # noqa: E402

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
VIEW_METRICS = ("total_events", "unique_visitors", "unique_records", "unique_parents")
DOWNLOAD_METRICS = VIEW_METRICS + ("unique_files", "total_volume")


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
                    it = items.setdefault(
                        k, {"id": k, "label": label, "view": _zero("view"), "download": _zero("download")}
                    )
                    it[kind] = _metrics(b, kind)
        subcounts[key] = sorted(items.values(), key=lambda i: str(i["id"]))
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return {
        "community_id": community,
        "period_start": f"{day}T00:00:00",
        "period_end": f"{day}T23:59:59",
        "timestamp": now,
        "totals": totals,
        "subcounts": subcounts,
    }


BASELINE_MAPPING = {
    "settings": {"index": {"number_of_shards": 1, "number_of_replicas": 0}},
    "mappings": {
        "dynamic": True,
        "date_detection": False,
        "dynamic_templates": [{"numbers": {"match_mapping_type": "double", "mapping": {"type": "long"}}}],
        "properties": {
            "community_id": {"type": "keyword"},
            "period_start": {"type": "date", "format": "strict_date_hour_minute_second"},
            "period_end": {"type": "date", "format": "strict_date_hour_minute_second"},
            "snapshot_date": {"type": "date", "format": "strict_date_hour_minute_second"},
            "timestamp": {"type": "date", "format": "strict_date_hour_minute_second"},
            "updated_timestamp": {"type": "date", "format": "strict_date_hour_minute_second"},
        },
    },
}


class UsageBaseline(Worker):
    def __init__(self, host, prefix):
        super().__init__(host, prefix, "usage", lambda kind: BASELINE_MAPPING)
        self.view_alias = f"{prefix}events-stats-record-view"
        self.dl_alias = f"{prefix}events-stats-file-download"

    def run(self, communities):
        client, first, last = self.client, self.days[0], self.days[-1]
        # Run pre-checks (spec C.2 #2): both aliases exist, sampled events carry community_ids.
        # (#1, stats-community-events non-empty, is skipped: not needed for usage aggregation.)
        client.indices.exists(index=self.view_alias)
        client.indices.exists(index=self.dl_alias)
        client.search(
            index=self.view_alias, body={"size": 10, "query": {"match_all": {}}, "_source": ["community_ids"]}
        )
        self.searches += 1
        out = {"communities": [], "precheck_searches": self.searches}

        # Pass 1: deltas, one community after the other (spec C.2: no parallelism).
        for community in communities:
            t, s0 = time.perf_counter(), self.searches
            stats = {"id": community, "searches": 0}
            # First/last view date (match_all for every community, spec C.2) and the skip check
            # (any event of the community in the range, in either index).
            for order in ("asc", "desc"):
                client.search(
                    index=self.view_alias, body={"size": 1, "sort": [{"timestamp": order}], "_source": ["timestamp"]}
                )
            rng = {"range": {"timestamp": {"gte": f"{first}T00:00:00", "lte": f"{last}T23:59:59"}}}
            q = {"bool": {"must": [rng] + ([{"term": {"community_ids": community}}] if community != "global" else [])}}
            client.count(index=self.view_alias, body={"query": q})
            client.count(index=self.dl_alias, body={"query": q})
            self.searches += 4
            ok, errors = self.bulk(self.per_day(community, stats))
            self.done(stats, "delta", t, s0, ok, errors)
            out["communities"].append(stats)
        client.indices.refresh(index=f"{self.delta_pat}-*")

        # Pass 2: snapshots (simplified C.6): per community, the dependency check (max delta
        # date), the last snapshot before the start (none with --ignore-bookmark), the scan of
        # older deltas for the "top" cache (none), then the deltas read in date order
        # (search_after, pages of 200) and one cumulative document per day: totals += delta
        # totals (every metric, as the reference does), "all" subcounts summed per id, "top"
        # subcounts summed per id and cut to the top 20 by view / by download events.
        for stats in out["communities"]:
            community = stats["id"]
            t, s0 = time.perf_counter(), self.searches
            self.dependency_check(community)
            client.search(
                index=f"{self.delta_pat}-*",
                body=deltas_query(community, {"period_start": {"lt": f"{first}T00:00:00"}}, 200),
            )
            self.searches += 1
            deltas = self.deltas(
                community, {"period_start": {"gte": f"{first}T00:00:00", "lte": f"{last}T23:59:59"}}, 200
            )
            ok, errors = self.bulk(self.snapshots(community, deltas))
            self.done(stats, "snapshot", t, s0, ok, errors)
            stats["searches"] = stats["delta_searches"] + stats["snapshot_searches"]
        client.indices.refresh(index=f"{self.snap_pat}-*")
        self.report(out)

    def per_day(self, community, stats):
        """The delta documents of ``community``, one per day, as bulk actions."""
        for day in self.days:
            replies = {}
            for kind, index in (("view", self.view_alias), ("download", self.dl_alias)):
                replies[kind] = self.client.search(index=index, body=delta_query(community, day.isoformat(), kind))
                self.searches += 1
            stats["searches"] += 2
            doc = build_delta(community, day.isoformat(), replies)
            # The reference checks each document's existence first (and deletes it if found).
            index, _id = f"{self.delta_pat}-{day.year}", f"{community}-{day.isoformat()}"
            if self.client.exists(index=index, id=_id):
                self.client.delete(index=index, id=_id)
            self.other_requests += 1
            yield index_action(index, _id, doc)

    def snapshots(self, community, deltas):
        """The cumulative documents of ``community``, one per delta, as bulk actions."""
        totals = {"view": _zero("view"), "download": _zero("download")}
        cache = {key: {} for key, *_ in SUBCOUNTS}
        for d in deltas:
            for kind in ("view", "download"):
                for m, v in d["totals"][kind].items():
                    totals[kind][m] += v
            subs = {}
            for key, _, _, typ in SUBCOUNTS:
                acc = cache[key]
                for it in d["subcounts"].get(key, []):
                    cur = acc.setdefault(
                        it["id"],
                        {"id": it["id"], "label": it["label"], "view": _zero("view"), "download": _zero("download")},
                    )
                    for kind in ("view", "download"):
                        for m, v in it[kind].items():
                            cur[kind][m] += v
                subs[key] = [json.loads(json.dumps(i)) for i in acc.values()] if typ == "all" else _top(acc)
            day = d["period_start"]
            now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
            doc = {
                "community_id": community,
                "snapshot_date": day,
                "timestamp": now,
                "updated_timestamp": now,
                "totals": json.loads(json.dumps(totals)),
                "subcounts": subs,
            }
            yield index_action(f"{self.snap_pat}-{day[:4]}", f"{community}-{day[:10]}", doc)


def _top(acc):
    """A "top" subcount: the items with events, the top N by view and by download events."""
    top = {}
    for kind in ("view", "download"):
        ranked = sorted(
            (i for i in acc.values() if i[kind]["total_events"] > 0), key=lambda i, kind=kind: -i[kind]["total_events"]
        )[:TOP_N]
        top[f"by_{kind}"] = [json.loads(json.dumps(i)) for i in ranked]
    return top


def baseline_worker(host, prefix, communities):
    """The reference's sequential loop; prints a JSON report with per-community figures."""
    UsageBaseline(host, prefix).run(communities)
