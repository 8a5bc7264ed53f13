"""The baseline of bench/aggregate_records.py: the reference's records aggregation algorithm
as Python (spec C.3/C.4), run by `aggregate_records.py --_baseline-worker COMMUNITIES` in a
subprocess, sequential:

  - deltas, per community (and "global") and per day: for a community the "added" record-id
    lookup on stats-community-events (size 10000, no event_type filter, as the reference)
    and the "removed" lookup, then the 2 aggregation searches on the records index (for
    "global": the records index by `created` and by `tombstone.removal_date`); helpers.bulk
    of the delta documents (the reference's adaptive chunk size);
  - snapshots: all deltas of the community loaded in date order, one cumulative document
    per day.

Prints a JSON report with per-community figures (bench/aggregate_common.py, Worker).
"""

import copy
import datetime as dt
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from aggregate_common import TOP_N, Worker, index_action  # noqa: E402

# Records subcounts as the reference configures them (spec C.3): key, terms field(s) (one agg
# each; a second *source* is a second list), label field or None, snapshot kind.
#   funders: combine_subfields id + name.keyword -> aggs funders_id, funders_keyword
#   affiliations: two sources (creators, contributors) -> aggs affiliations, affiliations_1
SUBCOUNTS = [
    ("resource_types", [["metadata.resource_type.id"]], "metadata.resource_type.title", "all"),
    ("access_statuses", [["access.status"]], None, "all"),
    ("languages", [["metadata.languages.id"]], "metadata.languages.title", "top"),
    ("subjects", [["metadata.subjects.id"]], "metadata.subjects.subject", "top"),
    ("rights", [["metadata.rights.id"]], "metadata.rights.title", "top"),
    (
        "funders",
        [["metadata.funding.funder.id", "metadata.funding.funder.name.keyword"]],
        "metadata.funding.funder.name",
        "top",
    ),
    ("periodicals", [["custom_fields.journal:journal.title.keyword"]], None, "top"),
    ("publishers", [["metadata.publisher.keyword"]], None, "top"),
    (
        "affiliations",
        [["metadata.creators.affiliations.id"], ["metadata.contributors.affiliations.id"]],
        "metadata.{src}.affiliations.name",
        "top",
    ),
    ("file_types", [["files.entries.ext"]], None, "all"),
]


def _agg_name(key, fields, field, src_i):
    """The reference's aggregation names: `{key}`, `{key}_{i}` (second source), and
    `{key}_{last path segment}` for combine_subfields."""
    base = key if src_i == 0 else f"{key}_{src_i}"
    return f"{base}_{field.split('.')[-1]}" if len(fields) > 1 else base


def _label_includes(key, label_field, src_i, fields):
    if key == "affiliations":
        src = ("creators", "contributors")[src_i]
        return [label_field.format(src=src), f"metadata.{src}.affiliations.id"]
    return [label_field, fields[0]]


def record_query(must):
    """The reference's CommunityRecordDeltaQuery body (spec C.3)."""

    def metric_aggs():
        return {
            "with_files": {
                "filter": {"term": {"files.enabled": True}},
                "aggs": {"unique_parents": {"cardinality": {"field": "parent.id"}}},
            },
            "without_files": {
                "filter": {"term": {"files.enabled": False}},
                "aggs": {"unique_parents": {"cardinality": {"field": "parent.id"}}},
            },
            "file_count": {"value_count": {"field": "files.entries.key"}},
            "total_bytes": {"sum": {"field": "files.entries.size"}},
        }

    aggs = {
        "total_records": {"value_count": {"field": "_id"}},
        **metric_aggs(),
        "uploaders": {"cardinality": {"field": "parent.access.owned_by.user"}},
    }
    for key, sources, label_field, _ in SUBCOUNTS:
        for src_i, fields in enumerate(sources):
            for field in fields:
                sub = {"terms": {"field": field, "size": 1000}, "aggs": metric_aggs()}
                if label_field:
                    sub["aggs"]["label"] = {
                        "top_hits": {
                            "size": 1,
                            "_source": {"includes": _label_includes(key, label_field, src_i, fields)},
                        }
                    }
                aggs[_agg_name(key, fields, field, src_i)] = sub
    return {"size": 0, "query": {"bool": {"must": must}}, "aggs": aggs}


def _objects(src, parts):
    """Every object at a dotted path, lists flattened at any level."""
    if isinstance(src, list):
        return [o for item in src for o in _objects(item, parts)]
    if not parts:
        return [src]
    if not isinstance(src, dict):
        return []
    return _objects(src.get(parts[0]), parts[1:])


def _label(bucket, key, includes):
    """The label from the top_hits source: the item (at the label field's parent path) whose
    id, or label, is the bucket key; "" when none (as the reference)."""
    hits = bucket.get("label", {}).get("hits", {}).get("hits", [])
    if not hits:
        return ""
    base, leaf = includes[0].rsplit(".", 1)
    for it in _objects(hits[0]["_source"], base.split(".")):
        if isinstance(it, dict) and (it.get("id") == key or it.get(leaf) == key) and it.get(leaf) is not None:
            return it[leaf]
    return ""


def _side_of(aggs):
    return (
        {
            "metadata_only": aggs.get("without_files", {}).get("doc_count", 0),
            "with_files": aggs.get("with_files", {}).get("doc_count", 0),
        },
        {
            "metadata_only": int(aggs.get("without_files", {}).get("unique_parents", {}).get("value") or 0),
            "with_files": int(aggs.get("with_files", {}).get("unique_parents", {}).get("value") or 0),
        },
        {
            "file_count": int(aggs.get("file_count", {}).get("value") or 0),
            "data_volume": int(round(aggs.get("total_bytes", {}).get("value") or 0)),
        },
    )


def build_delta(community, day, added, removed):
    """The reference's delta document (create_agg_dict) from the two aggregation replies."""
    ra, pa, fa = _side_of(added)
    rr, pr, fr = _side_of(removed)
    subcounts = {}
    for key, sources, label_field, _ in SUBCOUNTS:
        items = {}
        for src_i, fields in enumerate(sources):
            id_labels = set()
            for f_i, field in enumerate(fields):
                name = _agg_name(key, fields, field, src_i)
                includes = _label_includes(key, label_field, src_i, fields) if label_field else None
                keys = {}
                for side, aggs in (("added", added), ("removed", removed)):
                    for b in aggs.get(name, {}).get("buckets", []):
                        keys.setdefault(b["key"], {})[side] = b
                for k, sides in keys.items():
                    if not k:
                        continue
                    if f_i > 0 and k in id_labels:
                        continue  # a name bucket of an item already counted by id
                    b = sides.get("added") or sides.get("removed")
                    label = _label(b, k, includes) if includes else ""
                    if f_i == 0 and isinstance(label, str) and label:
                        id_labels.add(label)
                    r_a, p_a, f_a = _side_of(sides.get("added", {}))
                    r_r, p_r, f_r = _side_of(sides.get("removed", {}))
                    new = {
                        "id": k,
                        "label": label,
                        "records": {"added": r_a, "removed": r_r},
                        "parents": {"added": p_a, "removed": p_r},
                        "files": {"added": f_a, "removed": f_r},
                    }
                    old = items.get(k)
                    if old is None:
                        items[k] = new
                    else:  # merged across sources by summing (the reference's _merge_field_results)
                        for what in ("records", "parents", "files"):
                            for side in ("added", "removed"):
                                for m in old[what][side]:
                                    old[what][side][m] += new[what][side][m]
                        if not old["label"]:
                            old["label"] = label
        subcounts[key] = list(items.values())
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return {
        "timestamp": now,
        "community_id": community,
        "period_start": f"{day}T00:00:00",
        "period_end": f"{day}T23:59:59",
        "records": {"added": ra, "removed": rr},
        "parents": {"added": pa, "removed": pr},
        "files": {"added": fa, "removed": fr},
        "uploaders": int(added.get("uploaders", {}).get("value") or 0),
        "subcounts": subcounts,
        "updated_timestamp": now,
    }


def baseline_index_body(kind):
    """The records template's settings and strict mapping for the baseline's indices, so that
    the server indexes the same nested documents as for ours: ours, which agrees field by
    field with the reference's (tests/test_templates.py checks it)."""
    from invenio_community_stats import _core

    tpl = json.loads(_core.index_template(f"stats-community-records-{kind}-added-v1.0.0", ""))["template"]
    return {"settings": tpl["settings"], "mappings": tpl["mappings"]}


def _zero_split():
    return {"metadata_only": 0, "with_files": 0}


def _zero_files():
    return {"file_count": 0, "data_volume": 0}


def _net_item(it):
    return {
        "id": it["id"],
        "label": it["label"],
        "records": {
            m: it["records"]["added"][m] - it["records"]["removed"][m] for m in ("metadata_only", "with_files")
        },
        "parents": {
            m: it["parents"]["added"][m] - it["parents"]["removed"][m] for m in ("metadata_only", "with_files")
        },
        "files": {m: it["files"]["added"][m] - it["files"]["removed"][m] for m in ("file_count", "data_volume")},
    }


def _add_into(acc, item):
    cur = acc.get(item["id"])
    if cur is None:
        acc[item["id"]] = item
        return
    for what in ("records", "parents", "files"):
        for m in cur[what]:
            cur[what][m] += item[what][m]
    if item["label"]:
        cur["label"] = item["label"]


def _must(*clauses, must_not=None):
    q = {"bool": {"must": list(clauses)}}
    if must_not:
        q["bool"]["must_not"] = must_not
    return q


class RecordsBaseline(Worker):
    def __init__(self, host, prefix):
        # the reference's adaptive chunk size: 50, x1.1 after each successful bulk, max 100
        super().__init__(host, prefix, "records", baseline_index_body, chunk=50, adaptive=True)
        self.events, self.records_idx = f"{prefix}stats-community-events", f"{prefix}rdmrecords-records"
        self.first_day, self.last_day = self.days[0].isoformat(), self.days[-1].isoformat()

    def run(self, communities):
        client = self.client
        # Pre-checks (spec C.2 #1, #3): the events index exists and has documents; the records
        # index exists.
        client.indices.exists(index=self.events)
        client.count(index=self.events)
        client.indices.exists(index=self.records_idx)
        self.searches += 1
        self.other_requests += 2
        out = {"communities": [], "precheck_searches": self.searches}

        # Pass 1: records deltas, one community after the other (spec C.2: no parallelism).
        for community in communities:
            t, s0 = time.perf_counter(), self.searches
            stats = {"id": community}
            skip = self.skip(community)
            ok, errors = self.bulk(self.per_day(community, skip))
            self.done(stats, "delta", t, s0, ok, errors, skipped=skip)
            out["communities"].append(stats)
            print(
                f"  baseline delta {community}: {ok} docs, {self.searches - s0} searches, "
                f"{time.perf_counter() - t:.1f} s",
                file=sys.stderr,
                flush=True,
            )
        client.indices.refresh(index=f"{self.delta_pat}-*")
        self.other_requests += 1

        # Pass 2: snapshots (C.4): first/last delta, the dependency check (max delta date), the
        # last snapshot before the start (none: a first run), all deltas from the first one
        # (search_after on period_start, pages of 1000), one cumulative document per day.
        for stats in out["communities"]:
            community = stats["id"]
            t, s0 = time.perf_counter(), self.searches
            self.first_event(f"{self.delta_pat}-*", community, "period_start")
            assert not self.dependency_check(community)
            deltas = list(self.deltas(community, {"period_start": {"lte": f"{self.last_day}T23:59:59"}}, 1000))
            ok, errors = self.bulk(self.snapshots(community, deltas))
            self.done(stats, "snapshot", t, s0, ok, errors)
            stats["searches"] = stats["delta_searches"] + stats["snapshot_searches"]
        client.indices.refresh(index=f"{self.snap_pat}-*")
        self.other_requests += 1
        self.report(out)

    def skip(self, community):
        """The first/last event (record_created_date, even for "added"), then the skip check."""
        _, last = self.first_event(self.events, community, "record_created_date")
        skip = last is None or last[:10] < self.first_day
        if not skip:
            if community == "global":
                skip = self.client.count(index=self.events)["count"] == 0
            else:
                in_range = {"event_date": {"gte": f"{self.first_day}T00:00:00", "lte": f"{self.last_day}T23:59:59"}}
                q = {"bool": {"filter": [{"term": {"community_id": community}}, {"range": in_range}]}}
                skip = self.client.count(index=self.events, body={"query": q})["count"] == 0
            self.searches += 1
        return skip

    def first_event(self, index, community, field):
        self.client.indices.exists(index=index)
        self.client.indices.refresh(index=index)
        self.other_requests += 2
        q = {"match_all": {}} if community == "global" else {"term": {"community_id": community}}
        aggs = {"min_date": {"min": {"field": field}}, "max_date": {"max": {"field": field}}}
        r = self.client.search(index=index, body={"size": 0, "query": q, "aggs": aggs})
        self.searches += 1
        return r["aggregations"]["min_date"].get("value_as_string"), r["aggregations"]["max_date"].get(
            "value_as_string"
        )

    def lookup(self, community, start, end, find_deleted):
        """get_relevant_record_ids_from_events (use_included_dates)."""
        term = {"term": {"community_id": community}}
        if find_deleted:
            should = [
                _must({"term": {"event_type": "removed"}}, {"range": {"event_date": {"gte": start, "lte": end}}}, term),
                _must({"term": {"is_deleted": True}}, {"range": {"deleted_date": {"gte": start, "lte": end}}}, term),
            ]
        else:
            deleted_before = _must({"term": {"is_deleted": True}}, {"range": {"deleted_date": {"lt": start}}})
            should = [_must({"range": {"event_date": {"gte": start, "lte": end}}}, term, must_not=[deleted_before])]
        r = self.client.search(
            index=self.events,
            body={
                "query": {"bool": {"should": should, "minimum_should_match": 1}},
                "size": 10000,
                "_source": ["record_id"],
            },
        )
        self.searches += 1
        return {h["_source"]["record_id"] for h in r["hits"]["hits"]}

    def must_clauses(self, community, start, end, find_deleted):
        if community == "global":
            must = [{"term": {"is_published": True}}]
            if find_deleted:
                must += [
                    {"term": {"is_deleted": True}},
                    {"range": {"tombstone.removal_date": {"gte": start, "lte": end}}},
                ]
            else:
                must.append({"range": {"created": {"gte": start, "lte": end}}})
            return must
        ids = self.lookup(community, start, end, find_deleted)
        if not ids:
            return [{"term": {"_id": "no-matching-records"}}]
        return [{"terms": {"id": sorted(ids)}}, {"term": {"is_published": True}}]

    def per_day(self, community, skip):
        """The delta documents of ``community``, one per day, as bulk actions."""
        for day in self.days:
            d = day.isoformat()
            start, end = f"{d}T00:00:00", f"{d}T23:59:59"
            if skip:
                doc = build_delta(community, d, {}, {})
            else:
                replies = []
                for find_deleted in (False, True):
                    body = record_query(self.must_clauses(community, start, end, find_deleted))
                    replies.append(self.client.search(index=self.records_idx, body=body)["aggregations"])
                    self.searches += 1
                doc = build_delta(community, d, *replies)
            yield index_action(f"{self.delta_pat}-{day.year}", f"{community}-{d}", doc)

    def snapshots(self, community, deltas):
        """The cumulative documents of ``community`` from its ``deltas``, one per day (a gap
        stops them), as bulk actions."""
        now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
        prev_doc = {
            "community_id": community,
            "snapshot_date": None,
            "timestamp": now,
            "total_records": _zero_split(),
            "total_parents": _zero_split(),
            "total_files": _zero_files(),
            "total_uploaders": 0,
            "subcounts": {key: [] for key, *_ in SUBCOUNTS},
            "updated_timestamp": now,
        }
        cache = {key: {} for key, *_ in SUBCOUNTS}  # the exhaustive per-id net totals
        expected = None
        for d in deltas:
            day = d["period_start"][:10]
            if expected is not None and day != expected:
                break  # a gap stops the snapshots
            expected = (dt.date.fromisoformat(day) + dt.timedelta(days=1)).isoformat()
            now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
            doc = copy.deepcopy(prev_doc)
            doc.update(snapshot_date=f"{day}T00:00:00", timestamp=now, updated_timestamp=now)
            changed = any(d["records"][s][m] for s in ("added", "removed") for m in ("metadata_only", "with_files"))
            if changed:
                _accumulate(doc, d, cache)
            prev_doc = doc
            yield index_action(f"{self.snap_pat}-{day[:4]}", f"{community}-{day}", doc)


def _accumulate(doc, d, cache):
    """Adds the delta ``d`` to the snapshot ``doc`` (totals floored at 0), and its subcounts
    to ``cache``, from which the snapshot's subcounts are taken (all, or the top N)."""
    for what, tot in (("records", "total_records"), ("parents", "total_parents")):
        for m in ("metadata_only", "with_files"):
            doc[tot][m] = max(0, doc[tot][m] + d[what]["added"][m] - d[what]["removed"][m])
    for m in ("file_count", "data_volume"):
        doc["total_files"][m] = max(0, doc["total_files"][m] + d["files"]["added"][m] - d["files"]["removed"][m])
    doc["total_uploaders"] += d["uploaders"]
    for key, _, _, kind in SUBCOUNTS:
        acc = cache[key]
        for it in d["subcounts"].get(key, []):
            _add_into(acc, _net_item(it))
        if kind == "all":
            doc["subcounts"][key] = [copy.deepcopy(i) for i in acc.values()]
        else:
            ranked = sorted((i for i in acc.values() if _size(i) > 0), key=lambda i: (-_size(i), str(i["id"])))
            doc["subcounts"][key] = [copy.deepcopy(i) for i in ranked[:TOP_N]]


def _size(item):
    return item["records"]["metadata_only"] + item["records"]["with_files"]


def baseline_worker(host, prefix, communities):
    """The reference's sequential loop; prints a JSON report with per-community figures."""
    RecordsBaseline(host, prefix).run(communities)
