"""Benchmark of the records aggregation (not a test). One run, side by side on the same node
and data, ratios printed:

  (a) ours:     community-stats aggregate --aggregation-type community-records-delta-added-agg
                --aggregation-type community-records-snapshot-added-agg --start-date 2025-01-01
                --end-date 2025-12-31 --ignore-bookmark --json   (a subprocess)
  (b) baseline: the reference's algorithm as Python (spec C.3/C.4), sequential: per community
                (and "global") and per day, for a community the "added" record-id lookup on
                stats-community-events (size 10000, no event_type filter, as the reference) and
                the "removed" lookup, then the 2 aggregation searches on the records index
                (for "global": the records index by `created` and by `tombstone.removal_date`);
                helpers.bulk of the delta documents; then the snapshot pass (all deltas of the
                community loaded in date order, one cumulative document per day). Run on
                --baseline-communities N ("global" + N-1) and extrapolated linearly to all of
                them (printed as such), or on all of them with --full-baseline.

    python bench/aggregate_records.py --search-host http://127.0.0.1:9280 [--records 10000]
        [--communities 100] [--baseline-communities 10 | --full-baseline] [--regenerate] [--json]

Data (seeded, kept between runs: reused when the prefix holds exactly the expected counts,
--regenerate forces a rebuild):
  - `<prefix>rdmrecords-records-record-v7.0.0` (alias `<prefix>rdmrecords-records`): records
    created on random days of 2025; ~70 % with 1-3 files (`files.enabled`, entries with key,
    ext, size); resource type, languages, subjects (some without id), rights, funders (some
    without id), creator/contributor affiliations (some without id), publisher, journal title;
    parents shared by versions (~20 % of the records are new versions of an earlier one, with
    its owner and communities); owners among 500 users; 2 % deleted (tombstone.removal_date).
  - `<prefix>communities`: the communities, opted in to the dashboard.
  - `<prefix>stats-community-events-2025` (the package's template): per (record, community)
    an `added` event on or after the record's creation day (60 % on it), 5 % of them
    followed by a `removed` event; a `global` `added` event per record on its creation (as
    the reference's backfill writes); every event of a deleted record carries `is_deleted`
    and `deleted_date` (the deletion comes after all the record's other events).

Checks: our deltas against the figures computed here from the generated data ("truth"): per
(community, day) records / parents / files added and removed and uploaders, over every day of
the compared communities, plus every community's year totals and last snapshot; the
baseline's deltas against a Python model of the reference's algorithm over the same data
(to validate the baseline) and against the truth (where the reference is expected to
differ: its "added" lookup has no event_type filter, so a removal day also counts the record
as added; a record removed and later deleted is removed a second time on its deletion day).

Needs a node: scripts/opensearch start --port 9280 --heap 2g --data-dir /tmp/cs-bench-os
"""

import argparse
import copy
import datetime as dt
import json
import os
import random
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import aggregate_data as data  # noqa: E402
from aggregate_data import count, delete, fmt, http, run_measured, shard_queries  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
CLI = os.path.join(REPO, ".venv", "bin", "community-stats")
AGG_TYPES = ("community-records-delta-added-agg", "community-records-snapshot-added-agg")
SEED = 20250202
START, END = data.START, data.END
N_DAYS = (END - START).days + 1
DAY_STRS = [(START + dt.timedelta(days=i)).isoformat() for i in range(N_DAYS)]
START_TS = int(dt.datetime(START.year, START.month, START.day, tzinfo=dt.timezone.utc).timestamp())
END_TS = START_TS + N_DAYS * 86400 - 1  # 2025-12-31T23:59:59
N_USERS = 500
TOP_N = 20

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
    ("funders", [["metadata.funding.funder.id", "metadata.funding.funder.name.keyword"]], "metadata.funding.funder.name", "top"),
    ("periodicals", [["custom_fields.journal:journal.title.keyword"]], None, "top"),
    ("publishers", [["metadata.publisher.keyword"]], None, "top"),
    ("affiliations", [["metadata.creators.affiliations.id"], ["metadata.contributors.affiliations.id"]],
     "metadata.{src}.affiliations.name", "top"),
    ("file_types", [["files.entries.ext"]], None, "all"),
]

KW = {"type": "keyword"}
TEXT_KW = {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}}
TITLE = {"properties": {"en": TEXT_KW}}
AFF = {"properties": {"affiliations": {"properties": {"id": KW, "name": TEXT_KW}}}}
# Like tests/records_fixture.py RECORDS_MAPPING, plus what the reference's terms aggs need.
RECORDS_MAPPING = {
    "dynamic": True,
    "date_detection": False,
    "properties": {
        "id": KW, "pid": {"properties": {"pk": {"type": "long"}}}, "created": {"type": "date"},
        "updated": {"type": "date"}, "is_published": {"type": "boolean"}, "is_deleted": {"type": "boolean"},
        "deletion_status": KW, "bucket_id": KW,
        "versions": {"properties": {"index": {"type": "integer"}, "is_latest": {"type": "boolean"}}},
        "parent": {"properties": {
            "id": KW, "communities": {"properties": {"ids": KW, "default": KW}},
            "access": {"properties": {"owned_by": {"properties": {"user": KW}}}}}},
        "access": {"properties": {"status": KW, "record": KW, "files": KW}},
        "tombstone": {"properties": {"removal_date": {"type": "date"}, "removal_reason": {"properties": {"id": KW}}}},
        "files": {"properties": {"enabled": {"type": "boolean"}, "count": {"type": "integer"},
                                 "total_bytes": {"type": "long"},
                                 "entries": {"properties": {"key": KW, "ext": KW, "file_id": KW, "mimetype": KW,
                                                            "size": {"type": "long"}}}}},
        "metadata": {"properties": {
            "title": {"type": "text"}, "publication_date": KW,
            "resource_type": {"properties": {"id": KW, "title": TITLE}},
            "languages": {"properties": {"id": KW, "title": TITLE}},
            "subjects": {"properties": {"id": KW, "subject": TEXT_KW, "scheme": KW}},
            "rights": {"properties": {"id": KW, "title": TITLE}},
            "funding": {"properties": {"funder": {"properties": {"id": KW, "name": TEXT_KW}},
                                       "award": {"properties": {"id": KW}}}},
            "creators": AFF, "contributors": AFF,
            "publisher": TEXT_KW,
        }},
        "custom_fields": {"properties": {"journal:journal": {"properties": {"title": TEXT_KW}}}},
    },
}
SUBJECTS = [("subj%03d" % i, "Subject %d" % i) for i in range(80)]
FILE_ACCESS = ["open", "open", "open", "restricted", "embargoed"]


def log(*a):
    print(*a, file=LOG, flush=True)


LOG = sys.stdout


# ------------------------------------------------------------------ the data (model)
def iso(ts, micros=None):
    t = dt.datetime.fromtimestamp(ts, dt.timezone.utc)
    if micros is None:
        return t.strftime("%Y-%m-%dT%H:%M:%S")
    return t.strftime("%Y-%m-%dT%H:%M:%S") + f".{micros:06d}+00:00"


def day_index(ts):
    return (ts - START_TS) // 86400


def build_model(n_records, n_communities, seed=SEED):
    """The records, communities and community events, deterministic for (sizes, seed).

    Each record: dict with `doc` (the records-index document), `ts` (creation, epoch seconds),
    `micros`, `with_files`, `nfiles`, `bytes`, `parent`, `owner`, `comms`, `deleted_ts`, and
    per community `events[c] = (added_ts, removed_ts | None)`."""
    rng = random.Random(seed)
    comms = data.community_ids(n_communities)
    weights = [1.0 / (i + 5) ** 0.8 for i in range(n_communities)]
    rng.shuffle(weights)  # sizes independent of the ids (the baseline's subset is a fair sample)
    created = sorted(START_TS + rng.randrange(N_DAYS * 86400) for _ in range(n_records))
    records = []
    for i, ts in enumerate(created):
        recid = data.rdm_id(rng)
        if i > 0 and rng.random() < 0.2:  # a new version of an earlier record
            base = records[rng.randrange(i)]
            parent, owner, rc = base["parent"], base["owner"], base["comms"]
        else:
            parent, owner = data.rdm_id(rng), str(rng.randint(1, N_USERS))
            rc = rng.choices(comms, weights=weights, k=1) if comms else []
            if comms and rng.random() < 0.3:
                other = rng.choices(comms, weights=weights, k=1)[0]
                if other not in rc:
                    rc = rc + [other]
        has_files = rng.random() < 0.7
        entries = []
        if has_files:
            for k in range(rng.randint(1, 3)):
                ext = rng.choice(data.EXTENSIONS)
                entries.append({"key": f"file{k + 1}.{ext}", "ext": ext, "size": rng.randint(1_000, 500_000_000),
                                "file_id": "%032x" % rng.getrandbits(128), "mimetype": f"application/{ext}"})
        rt = rng.choice(data.RESOURCE_TYPES)
        funding = []
        for f_id, f_name in rng.sample(data.FUNDERS, rng.randint(0, 2)):
            funding.append({"funder": {"id": f_id, "name": f_name} if rng.random() < 0.85
                            else {"name": "Local Funder %d" % rng.randrange(30)},
                            "award": {"id": "award-%05d" % rng.randrange(10000)}})

        def people(n):
            out = []
            for _ in range(n):
                affs = []
                for a_id, a_name in rng.sample(data.AFFILIATIONS, rng.randint(0, 2)):
                    affs.append({"id": a_id, "name": a_name} if rng.random() < 0.9
                                else {"name": "Unlisted Institute %d" % rng.randrange(50)})
                out.append({"person_or_org": {"type": "personal", "name": "Person %d" % rng.randrange(5000)},
                            "affiliations": affs})
            return out

        subjects = []
        for s_id, s_name in rng.sample(SUBJECTS, rng.randint(0, 3)):
            subjects.append({"id": s_id, "subject": s_name, "scheme": "FOS"} if rng.random() < 0.9
                            else {"subject": "Keyword %d" % rng.randrange(100)})
        micros = rng.randrange(1_000_000)
        metadata = {
            "title": f"Record {i}", "publication_date": f"{2000 + rng.randrange(26)}",
            "resource_type": {"id": rt[0], "title": {"en": rt[1]}},
            "languages": [{"id": a, "title": {"en": b}} for a, b in rng.sample(data.LANGUAGES, rng.randint(1, 2))],
            "subjects": subjects,
            "rights": [{"id": a, "title": {"en": b}} for a, b in rng.sample(data.RIGHTS, 1)],
            "funding": funding,
            "creators": people(rng.randint(1, 3)),
            "contributors": people(rng.randint(0, 2)),
            "publisher": rng.choice(data.PUBLISHERS),
        }
        doc = {
            "id": recid, "pid": {"pk": i + 1}, "created": iso(ts, micros), "updated": iso(ts, micros),
            "is_published": True, "is_deleted": False, "deletion_status": "P",
            "bucket_id": "%032x" % rng.getrandbits(128),
            "parent": {"id": parent, "communities": {"ids": list(rc), "default": rc[0] if rc else None},
                       "access": {"owned_by": {"user": owner}}},
            "access": {"status": rng.choice(FILE_ACCESS) if has_files else "metadata-only", "record": "public",
                       "files": "public" if has_files else "restricted"},
            "files": {"enabled": has_files, "count": len(entries), "total_bytes": sum(e["size"] for e in entries),
                      "entries": entries},
            "metadata": metadata,
        }
        if rng.random() < 0.5:
            doc["custom_fields"] = {"journal:journal": {"title": rng.choice(data.JOURNALS)}}
        events = {}
        last = ts
        for c in rc:
            if rng.random() < 0.6:
                added = ts
            else:
                added = max(ts, min(END_TS, ts + rng.randint(1, 60) * 86400 + rng.randrange(-3600, 3600)))
            removed = None
            if rng.random() < 0.05 and added < END_TS:
                removed = min(END_TS, added + rng.randint(1, 90) * 86400 + rng.randrange(-3600, 3600))
                removed = max(removed, added + 1)
            events[c] = (added, removed)
            last = max(last, added, removed or 0)
        deleted_ts = None
        if rng.random() < 0.02:
            deleted_ts = min(END_TS, max(last, last + rng.randint(0, 60) * 86400 + rng.randrange(-3600, 3600)))
            doc.update(is_deleted=True, deletion_status="D",
                       tombstone={"removal_date": iso(deleted_ts), "removal_reason": {"id": "spam"}})
        records.append({"doc": doc, "id": recid, "ts": ts, "micros": micros, "with_files": has_files,
                        "nfiles": len(entries), "bytes": sum(e["size"] for e in entries), "parent": parent,
                        "owner": owner, "comms": list(rc), "events": events, "deleted_ts": deleted_ts})
    return comms, records


def event_docs(records):
    """(_id, document) of every community event (global ones included)."""
    for r in records:
        base = {"record_id": r["id"], "record_created_date": r["doc"]["created"],
                "record_published_date": r["doc"]["metadata"]["publication_date"] + "-01-01",
                "is_deleted": r["deleted_ts"] is not None}
        if r["deleted_ts"] is not None:
            base["deleted_date"] = iso(r["deleted_ts"])
        upd = iso(r["deleted_ts"]) if r["deleted_ts"] is not None else None
        todo = [("global", "added", r["ts"])]
        for c, (added, removed) in r["events"].items():
            todo.append((c, "added", added))
            if removed is not None:
                todo.append((c, "removed", removed))
        for c, kind, ts in todo:
            doc = dict(base, community_id=c, event_type=kind, event_date=iso(ts), timestamp=iso(ts),
                       updated_timestamp=upd or iso(ts))
            yield f"{r['id']}-{c}-{kind}", doc


def expected_events(records):
    return sum(1 + len(r["events"]) + sum(1 for a, rm in r["events"].values() if rm is not None) for r in records)


def generate(host, prefix, n_records, n_communities, log=print):
    """(Re)creates the bench data under ``prefix``; returns (seconds, comms, records)."""
    from invenio_community_stats import _core

    t0 = time.perf_counter()
    delete(host, f"{prefix}*")
    data.install_templates(host, prefix)
    comms, records = build_model(n_records, n_communities)
    data.write_communities(host, prefix, comms)
    rec_index = f"{prefix}rdmrecords-records-record-v7.0.0"
    r = http("PUT", f"{host}/{rec_index}", {"settings": {"index": {"number_of_shards": 1, "number_of_replicas": 0}},
                                           "aliases": {f"{prefix}rdmrecords-records": {}}, "mappings": RECORDS_MAPPING})
    if not (r or {}).get("acknowledged"):
        raise SystemExit(f"creating {rec_index} failed: {str(r)[:400]}")
    ev_index = f"{prefix}stats-community-events-{START.year}"

    def lines():
        for rec in records:
            yield json.dumps({"index": {"_index": rec_index, "_id": rec["id"]}})
            yield json.dumps(rec["doc"], separators=(",", ":"))
        for _id, doc in event_docs(records):
            yield json.dumps({"index": {"_index": ev_index, "_id": _id}})
            yield json.dumps(doc, separators=(",", ":"))

    buf, errors = [], 0

    def flush():
        nonlocal errors
        if not buf:
            return
        r = http("POST", f"{host}/_bulk", ("\n".join(buf) + "\n").encode(), "application/x-ndjson")
        if (r or {}).get("errors") or "items" not in (r or {}):
            errors += 1
            bad = next((i for i in (r or {}).get("items", []) if list(i.values())[0].get("error")), r)
            log(f"  bulk error: {json.dumps(bad)[:400]}")
        buf.clear()

    for line in lines():
        buf.append(line)
        if len(buf) >= 4000:
            flush()
    flush()
    if errors:
        raise SystemExit(f"{errors} bulk requests had errors")
    http("POST", f"{host}/{prefix}rdmrecords-records,{prefix}stats-community-events-*/_refresh")
    n_ev = expected_events(records)
    meta = {"records": n_records, "communities": n_communities, "seed": SEED, "events": n_ev}
    http("PUT", f"{host}/{prefix}bench-meta", {"settings": {"number_of_shards": 1, "number_of_replicas": 0},
                                              "mappings": {"dynamic": False, "properties": {}}})
    r = http("PUT", f"{host}/{prefix}bench-meta/_doc/meta?refresh=true", meta)
    if (r or {}).get("result") not in ("created", "updated"):
        raise SystemExit(f"writing the bench meta document failed: {str(r)[:400]}")
    return time.perf_counter() - t0, comms, records


def cached(host, prefix, n_records, n_communities):
    """True if ``prefix`` already holds exactly this data set."""
    r = http("GET", f"{host}/{prefix}bench-meta/_doc/meta")
    if not r or not r.get("found"):
        return False
    m = r["_source"]
    if (m.get("records"), m.get("communities"), m.get("seed")) != (n_records, n_communities, SEED):
        return False
    http("POST", f"{host}/{prefix}rdmrecords-records,{prefix}stats-community-events-*/_refresh?ignore_unavailable=true")
    return (count(host, f"{prefix}rdmrecords-records") == n_records
            and count(host, f"{prefix}stats-community-events-*") == m.get("events")
            and count(host, f"{prefix}communities") == n_communities)


# ------------------------------------------------------------------ truth and reference model
def _side():
    return {"records": [0, 0], "parents": [set(), set()], "files": [0, 0]}


def _count(side, r):
    k = 1 if r["with_files"] else 0
    side["records"][k] += 1
    side["parents"][k].add(r["parent"])
    side["files"][0] += r["nfiles"]
    side["files"][1] += r["bytes"]


def _day(days, d):
    if d not in days:
        days[d] = {"added": _side(), "removed": _side(), "uploaders": set()}
    return days[d]


def truth_deltas(comms, records):
    """{community: {day index: {added, removed, uploaders}}}: the intended semantics (ours):
    a community's record is added on its `added` event's day, removed on its `removed`
    event's day, or on its deletion day unless it was removed from the community before;
    global: added on `created`, removed on the tombstone's removal day."""
    out = {c: {} for c in ["global", *comms]}
    for r in records:
        d = day_index(r["ts"])
        day = _day(out["global"], d)
        _count(day["added"], r)
        day["uploaders"].add(r["owner"])
        if r["deleted_ts"] is not None:
            _count(_day(out["global"], day_index(r["deleted_ts"]))["removed"], r)
        for c, (added, removed) in r["events"].items():
            day = _day(out[c], day_index(added))
            _count(day["added"], r)
            day["uploaders"].add(r["owner"])
            if removed is not None:
                _count(_day(out[c], day_index(removed))["removed"], r)
            if r["deleted_ts"] is not None and (removed is None or day_index(removed) > day_index(r["deleted_ts"])):
                _count(_day(out[c], day_index(r["deleted_ts"]))["removed"], r)
    return out


def reference_deltas(comms, records):
    """The same figures as the reference's algorithm computes them (spec C.3): "added" = any
    event of the community on the day (no event_type filter) unless deleted before the day;
    "removed" = `removed` events of the day plus every event whose `deleted_date` is on the
    day; ranges `gte 00:00:00, lte 23:59:59` (so a `created` in the day's last second, with a
    fraction, is lost)."""
    out = {c: {} for c in ["global", *comms]}
    for r in records:
        if (r["ts"] - START_TS) % 86400 < 86399 or r["micros"] == 0:
            day = _day(out["global"], day_index(r["ts"]))
            _count(day["added"], r)
            day["uploaders"].add(r["owner"])
        if r["deleted_ts"] is not None:
            _count(_day(out["global"], day_index(r["deleted_ts"]))["removed"], r)
        for c, (added, removed) in r["events"].items():
            ev_days = {day_index(added)} | ({day_index(removed)} if removed is not None else set())
            del_day = day_index(r["deleted_ts"]) if r["deleted_ts"] is not None else None
            for d in ev_days:
                if del_day is None or del_day >= d:
                    day = _day(out[c], d)
                    _count(day["added"], r)
                    day["uploaders"].add(r["owner"])
            rem_days = ({day_index(removed)} if removed is not None else set()) | ({del_day} if del_day is not None else set())
            for d in rem_days:
                _count(_day(out[c], d)["removed"], r)
    return out


def flat(day):
    """A truth day as the documents' figures."""
    if day is None:
        day = {"added": _side(), "removed": _side(), "uploaders": set()}
    f = {"uploaders": len(day["uploaders"])}
    for side in ("added", "removed"):
        s = day[side]
        f[f"records.{side}"] = {"metadata_only": s["records"][0], "with_files": s["records"][1]}
        f[f"parents.{side}"] = {"metadata_only": len(s["parents"][0]), "with_files": len(s["parents"][1])}
        f[f"files.{side}"] = {"file_count": s["files"][0], "data_volume": s["files"][1]}
    return f


def doc_figures(doc):
    f = {"uploaders": int(doc.get("uploaders") or 0)}
    for side in ("added", "removed"):
        for what in ("records", "parents", "files"):
            v = (doc.get(what) or {}).get(side) or {}
            f[f"{what}.{side}"] = {k: int(round(x or 0)) for k, x in v.items()}
    return f


# ------------------------------------------------------------------ (a) ours
def ours_available():
    if not os.path.exists(CLI):
        return False, f"{CLI} not found"
    r = subprocess.run([CLI, "aggregate", "--help"], capture_output=True, text=True)
    if r.returncode != 0:
        return False, (r.stderr or r.stdout).strip()[-300:]
    if AGG_TYPES[0] not in r.stdout:
        return False, f"{AGG_TYPES[0]} not offered by `aggregate --help`"
    return True, ""


def ours_indices(prefix):
    return f"{prefix}stats-community-records-delta-added-*", f"{prefix}stats-community-records-snapshot-added-*"


def run_ours(host, prefix, extra):
    delta_pat, snap_pat = ours_indices(prefix)
    delete(host, delta_pat)
    delete(host, snap_pat)
    # A fresh first run, as the baseline's: no saved snapshot state, no bookmarks.
    delete(host, f"{prefix}stats-community-aggregation-state")
    delete(host, f"{prefix}stats-bookmarks-community")
    # An interrupted earlier bench run may have left its lock (the bench prefix is ours alone).
    subprocess.run([CLI, "--search-host", host, "--index-prefix", prefix, "clear-lock"], capture_output=True, text=True)
    cmd = [CLI, "--search-host", host, "--index-prefix", prefix, "aggregate"]
    for t in AGG_TYPES:
        cmd += ["--aggregation-type", t]
    cmd += ["--start-date", START.isoformat(), "--end-date", END.isoformat(), "--ignore-bookmark", "--json", *extra]
    before = shard_queries(host)
    secs, rss, rc, out, err = run_measured(cmd)
    after = shard_queries(host)
    res = {"command": " ".join(cmd), "seconds": secs, "peak_rss_mib": rss, "returncode": rc,
           "shard_queries": after - before}
    report = None
    try:
        report = json.loads(out)
    except ValueError:
        start = out.find("{")
        if start >= 0:
            try:
                report = json.loads(out[start:])
            except ValueError:
                pass
    res["report"] = report
    if rc != 0 and report is None:
        res["error"] = (err or out).strip()[-2000:]
        return res
    res["searches"] = report.get("searches") if isinstance(report, dict) else None
    http("POST", f"{host}/{prefix}stats-community-records-*/_refresh?allow_no_indices=true&ignore_unavailable=true")
    res["delta_docs"] = count(host, delta_pat)
    res["snapshot_docs"] = count(host, snap_pat)
    res["docs"] = res["delta_docs"] + res["snapshot_docs"]
    if err.strip():
        res["stderr_tail"] = err.strip()[-1500:]
    if rc != 0:
        res["error"] = f"exit code {rc}: " + (err or "").strip()[-1500:]
    return res


# ------------------------------------------------------------------ (b) baseline (worker)
class Counter:
    def __init__(self):
        self.searches = 0       # search + count requests
        self.bulk_requests = 0
        self.other_requests = 0  # index existence checks, refreshes


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
            "with_files": {"filter": {"term": {"files.enabled": True}},
                           "aggs": {"unique_parents": {"cardinality": {"field": "parent.id"}}}},
            "without_files": {"filter": {"term": {"files.enabled": False}},
                              "aggs": {"unique_parents": {"cardinality": {"field": "parent.id"}}}},
            "file_count": {"value_count": {"field": "files.entries.key"}},
            "total_bytes": {"sum": {"field": "files.entries.size"}},
        }

    aggs = {"total_records": {"value_count": {"field": "_id"}}, **metric_aggs(),
            "uploaders": {"cardinality": {"field": "parent.access.owned_by.user"}}}
    for key, sources, label_field, _ in SUBCOUNTS:
        for src_i, fields in enumerate(sources):
            for field in fields:
                sub = {"terms": {"field": field, "size": 1000}, "aggs": metric_aggs()}
                if label_field:
                    sub["aggs"]["label"] = {"top_hits": {"size": 1, "_source": {
                        "includes": _label_includes(key, label_field, src_i, fields)}}}
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
    return ({"metadata_only": aggs.get("without_files", {}).get("doc_count", 0),
             "with_files": aggs.get("with_files", {}).get("doc_count", 0)},
            {"metadata_only": int(aggs.get("without_files", {}).get("unique_parents", {}).get("value") or 0),
             "with_files": int(aggs.get("with_files", {}).get("unique_parents", {}).get("value") or 0)},
            {"file_count": int(aggs.get("file_count", {}).get("value") or 0),
             "data_volume": int(round(aggs.get("total_bytes", {}).get("value") or 0))})


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
                    new = {"id": k, "label": label, "records": {"added": r_a, "removed": r_r},
                           "parents": {"added": p_a, "removed": p_r}, "files": {"added": f_a, "removed": f_r}}
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
    return {"timestamp": now, "community_id": community, "period_start": f"{day}T00:00:00",
            "period_end": f"{day}T23:59:59",
            "records": {"added": ra, "removed": rr}, "parents": {"added": pa, "removed": pr},
            "files": {"added": fa, "removed": fr},
            "uploaders": int(added.get("uploaders", {}).get("value") or 0),
            "subcounts": subcounts, "updated_timestamp": now}


def baseline_index_body(kind):
    """The reference's own template (settings and strict mapping) for the baseline's indices,
    so that the server indexes the same nested documents as for ours; a dynamic mapping
    with the subcounts stored only, if the reference's templates are not at hand."""
    path = os.path.join(os.path.dirname(REPO), "shared", "reference", "index-templates",
                        f"stats-community-records-{kind}-added-v1.0.0.json")
    if os.path.exists(path):
        tpl = json.load(open(path))["template"]
        return {"settings": tpl["settings"], "mappings": tpl["mappings"]}
    date = {"type": "date", "format": "date_optional_time"}
    return {"settings": {"index": {"number_of_shards": 1, "number_of_replicas": 1}},
            "mappings": {"dynamic": True, "date_detection": False, "properties": {
                "community_id": {"type": "keyword"}, "period_start": date, "period_end": date, "snapshot_date": date,
                "subcounts": {"type": "object", "enabled": False}}}}


def _zero_split():
    return {"metadata_only": 0, "with_files": 0}


def _zero_files():
    return {"file_count": 0, "data_volume": 0}


def _net_item(it):
    return {"id": it["id"], "label": it["label"],
            "records": {m: it["records"]["added"][m] - it["records"]["removed"][m] for m in ("metadata_only", "with_files")},
            "parents": {m: it["parents"]["added"][m] - it["parents"]["removed"][m] for m in ("metadata_only", "with_files")},
            "files": {m: it["files"]["added"][m] - it["files"]["removed"][m] for m in ("file_count", "data_volume")}}


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


def baseline_worker(host, prefix, communities):
    """The reference's sequential loop; prints a JSON report with per-community figures."""
    from opensearchpy import OpenSearch, helpers

    client = OpenSearch([host], timeout=300)
    c = Counter()
    events, records_idx = f"{prefix}stats-community-events", f"{prefix}rdmrecords-records"
    delta_pat, snap_pat = f"{prefix}bench-baseline-records-delta", f"{prefix}bench-baseline-records-snapshot"
    delete(host, f"{delta_pat}-*")
    delete(host, f"{snap_pat}-*")
    all_days = list(data.days())
    for year in sorted({d.year for d in all_days}):
        for pat, kind in ((delta_pat, "delta"), (snap_pat, "snapshot")):
            client.indices.create(index=f"{pat}-{year}", body=baseline_index_body(kind))
    first_day, last_day = all_days[0].isoformat(), all_days[-1].isoformat()
    t0 = time.perf_counter()
    # Pre-checks (spec C.2 #1, #3): the events index exists and has documents; the records
    # index exists.
    client.indices.exists(index=events)
    client.count(index=events)
    client.indices.exists(index=records_idx)
    c.searches += 1
    c.other_requests += 2
    out = {"communities": [], "precheck_searches": c.searches}
    chunk = [50]  # the reference's adaptive chunk size: 50, x1.1 after each successful bulk, max 100

    def first_event(index, community, field):
        client.indices.exists(index=index)
        client.indices.refresh(index=index)
        c.other_requests += 2
        q = {"match_all": {}} if community == "global" else {"term": {"community_id": community}}
        r = client.search(index=index, body={"size": 0, "query": q, "aggs": {
            "min_date": {"min": {"field": field}}, "max_date": {"max": {"field": field}}}})
        c.searches += 1
        return r["aggregations"]["min_date"].get("value_as_string"), r["aggregations"]["max_date"].get("value_as_string")

    def lookup(community, start, end, find_deleted):
        """get_relevant_record_ids_from_events (use_included_dates)."""
        if find_deleted:
            should = [
                {"bool": {"must": [{"term": {"event_type": "removed"}}, {"range": {"event_date": {"gte": start, "lte": end}}},
                                   {"term": {"community_id": community}}]}},
                {"bool": {"must": [{"term": {"is_deleted": True}}, {"range": {"deleted_date": {"gte": start, "lte": end}}},
                                   {"term": {"community_id": community}}]}},
            ]
        else:
            should = [{"bool": {
                "must": [{"range": {"event_date": {"gte": start, "lte": end}}}, {"term": {"community_id": community}}],
                "must_not": [{"bool": {"must": [{"term": {"is_deleted": True}}, {"range": {"deleted_date": {"lt": start}}}]}}]}}]
        r = client.search(index=events, body={"query": {"bool": {"should": should, "minimum_should_match": 1}},
                                              "size": 10000, "_source": ["record_id"]})
        c.searches += 1
        return {h["_source"]["record_id"] for h in r["hits"]["hits"]}

    def must_clauses(community, start, end, find_deleted):
        if community == "global":
            must = [{"term": {"is_published": True}}]
            if find_deleted:
                must += [{"term": {"is_deleted": True}}, {"range": {"tombstone.removal_date": {"gte": start, "lte": end}}}]
            else:
                must.append({"range": {"created": {"gte": start, "lte": end}}})
            return must
        ids = lookup(community, start, end, find_deleted)
        if not ids:
            return [{"term": {"_id": "no-matching-records"}}]
        return [{"terms": {"id": sorted(ids)}}, {"term": {"is_published": True}}]

    def per_day(community, stats, skip):
        for day in all_days:
            d = day.isoformat()
            start, end = f"{d}T00:00:00", f"{d}T23:59:59"
            if skip:
                doc = build_delta(community, d, {}, {})
            else:
                replies = []
                for find_deleted in (False, True):
                    body = record_query(must_clauses(community, start, end, find_deleted))
                    replies.append(client.search(index=records_idx, body=body)["aggregations"])
                    c.searches += 1
                doc = build_delta(community, d, *replies)
            yield {"_op_type": "index", "_index": f"{delta_pat}-{day.year}", "_id": f"{community}-{d}", "_source": doc}

    def bulk(actions):
        ok, errors = helpers.bulk(client, actions, chunk_size=chunk[0], raise_on_error=False)
        c.bulk_requests += -(-ok // chunk[0])
        if not errors:
            chunk[0] = min(int(chunk[0] * 1.1), 100)
        return ok, errors

    # Pass 1: records deltas, one community after the other (spec C.2: no parallelism).
    for community in communities:
        t = time.perf_counter()
        s0 = c.searches
        stats = {"id": community}
        # First/last event (record_created_date, even for "added"), then the skip check.
        _, last = first_event(events, community, "record_created_date")
        skip = last is None or last[:10] < first_day
        if not skip:
            if community == "global":
                skip = client.count(index=events)["count"] == 0
            else:
                skip = client.count(index=events, body={"query": {"bool": {"filter": [
                    {"term": {"community_id": community}},
                    {"range": {"event_date": {"gte": f"{first_day}T00:00:00", "lte": f"{last_day}T23:59:59"}}}]}}})["count"] == 0
            c.searches += 1
        ok, errors = bulk(per_day(community, stats, skip))
        if errors:
            stats["first_error"] = json.dumps(errors[0])[:500]
        stats.update(delta_seconds=time.perf_counter() - t, delta_docs=ok, delta_errors=len(errors),
                     delta_searches=c.searches - s0, skipped=skip)
        out["communities"].append(stats)
        print(f"  baseline delta {community}: {ok} docs, {c.searches - s0} searches, "
              f"{time.perf_counter() - t:.1f} s", file=sys.stderr, flush=True)
    client.indices.refresh(index=f"{delta_pat}-*")
    c.other_requests += 1

    # Pass 2: snapshots (C.4): first/last delta, the dependency check (max delta date), the
    # last snapshot before the start (none: a first run), all deltas from the first one
    # (search_after on period_start, pages of 1000), one cumulative document per day.
    for stats in out["communities"]:
        community = stats["id"]
        t = time.perf_counter()
        s0 = c.searches
        first_event(f"{delta_pat}-*", community, "period_start")
        client.search(index=f"{delta_pat}-*", body={"size": 0, "query": {"term": {"community_id": community}},
                                                    "aggs": {"max_date": {"max": {"field": "period_start"}}}})
        prev = client.search(index=f"{snap_pat}-*", body={"size": 1, "sort": [{"snapshot_date": "desc"}], "query": {"bool": {
            "must": [{"term": {"community_id": community}}, {"range": {"snapshot_date": {"lt": f"{first_day}T00:00:00"}}}]}}})
        c.searches += 2
        assert not prev["hits"]["hits"]
        deltas, after = [], None
        while True:
            body = {"size": 1000, "sort": [{"period_start": "asc"}], "query": {"bool": {"must": [
                {"term": {"community_id": community}}, {"range": {"period_start": {"lte": f"{last_day}T23:59:59"}}}]}}}
            if after:
                body["search_after"] = after
            hits = client.search(index=f"{delta_pat}-*", body=body)["hits"]["hits"]
            c.searches += 1
            deltas += [h["_source"] for h in hits]
            if len(hits) < 1000:
                break
            after = hits[-1]["sort"]

        def snapshots():
            now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
            prev_doc = {"community_id": community, "snapshot_date": None, "timestamp": now,
                        "total_records": _zero_split(), "total_parents": _zero_split(), "total_files": _zero_files(),
                        "total_uploaders": 0, "subcounts": {key: [] for key, *_ in SUBCOUNTS}, "updated_timestamp": now}
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
                            size = lambda i: i["records"]["metadata_only"] + i["records"]["with_files"]  # noqa: E731
                            ranked = sorted((i for i in acc.values() if size(i) > 0), key=lambda i: (-size(i), str(i["id"])))
                            doc["subcounts"][key] = [copy.deepcopy(i) for i in ranked[:TOP_N]]
                prev_doc = doc
                yield {"_op_type": "index", "_index": f"{snap_pat}-{day[:4]}", "_id": f"{community}-{day}", "_source": doc}

        ok, errors = bulk(snapshots())
        if errors:
            stats["first_error"] = json.dumps(errors[0])[:500]
        stats.update(snapshot_seconds=time.perf_counter() - t, snapshot_docs=ok, snapshot_errors=len(errors),
                     snapshot_searches=c.searches - s0)
        stats["searches"] = stats["delta_searches"] + stats["snapshot_searches"]
    client.indices.refresh(index=f"{snap_pat}-*")
    c.other_requests += 1
    out.update(seconds=time.perf_counter() - t0, searches=c.searches, bulk_requests=c.bulk_requests,
               other_requests=c.other_requests)
    print(json.dumps(out))


def run_baseline(host, prefix, communities):
    cmd = [sys.executable, os.path.abspath(__file__), "--search-host", host, "--prefix", prefix,
           "--_baseline-worker", ",".join(communities)]
    before = shard_queries(host)
    secs, rss, rc, out, err = run_measured(cmd)
    after = shard_queries(host)
    if rc != 0:
        raise SystemExit(f"baseline failed ({rc}):\n{err[-3000:]}")
    rep = json.loads(out)
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
    docs = sum(s["delta_docs"] + s["snapshot_docs"] for s in done)
    if missing <= 0 or not others:
        return {"seconds": rep["wall_seconds"], "searches": rep["searches"], "docs": docs,
                "shard_queries": rep["shard_queries"], "extrapolated": False, "measured_communities": len(done)}
    n = len(others)
    per = lambda f: sum(f(s) for s in others) / n  # noqa: E731
    per_secs = per(lambda s: s["delta_seconds"] + s["snapshot_seconds"])
    searches = rep["searches"] + per(lambda s: s["searches"]) * missing
    return {"seconds": rep["wall_seconds"] + per_secs * missing, "searches": round(searches),
            "docs": round(docs + per(lambda s: s["delta_docs"] + s["snapshot_docs"]) * missing),
            "shard_queries": round(rep["shard_queries"] * searches / max(1, rep["searches"])),
            "extrapolated": True, "measured_communities": len(done), "per_community_seconds": per_secs,
            "measured_seconds": rep["wall_seconds"], "measured_searches": rep["searches"], "measured_docs": docs}


# ------------------------------------------------------------------ comparison
def fetch(host, index, community, date_field, size=1000):
    body = {"size": size, "sort": [{date_field: "asc"}], "query": {"term": {"community_id": community}}}
    r = http("POST", f"{host}/{index}/_search?allow_no_indices=true&ignore_unavailable=true", body)
    return {str(h["_source"].get(date_field, ""))[:10]: h["_source"] for h in (r or {}).get("hits", {}).get("hits", [])}


def snapshot_truth(days):
    """Records and files in the community at the end of each day, from the truth deltas
    (cumulative, as both implementations define it)."""
    out, rec, files = [], [0, 0], [0, 0]
    for i in range(N_DAYS):
        day = days.get(i)
        if day:
            for k in (0, 1):
                rec[k] += day["added"]["records"][k] - day["removed"]["records"][k]
            for k in (0, 1):
                files[k] += day["added"]["files"][k] - day["removed"]["files"][k]
        out.append(({"metadata_only": rec[0], "with_files": rec[1]}, {"file_count": files[0], "data_volume": files[1]}))
    return out


def membership_at_end(comms, records):
    """Records in each community (and global) at the end of the year, split by files."""
    out = {c: [0, 0] for c in ["global", *comms]}
    for r in records:
        k = 1 if r["with_files"] else 0
        if r["deleted_ts"] is None:
            out["global"][k] += 1
        for c, (added, removed) in r["events"].items():
            if removed is None and r["deleted_ts"] is None:
                out[c][k] += 1
    return out


def compare(host, prefix, compared, all_comms, truth, ref, members, have_ours, have_base):
    """Mismatch counts (and a few examples) per check."""
    checks = {}

    def note(check, ok, example):
        c = checks.setdefault(check, {"compared": 0, "mismatches": 0, "examples": []})
        c["compared"] += 1
        if not ok:
            c["mismatches"] += 1
            if len(c["examples"]) < 4:
                c["examples"].append(example)

    delta_pat, snap_pat = ours_indices(prefix)
    figures = ("records.added", "records.removed", "parents.added", "parents.removed", "files.added", "files.removed",
               "uploaders")
    explained = {}
    for community in compared:
        t_days, r_days = truth.get(community, {}), ref.get(community, {})
        ours = fetch(host, delta_pat, community, "period_start") if have_ours else {}
        base = fetch(host, f"{prefix}bench-baseline-records-delta-*", community, "period_start") if have_base else {}
        if have_ours:
            note("ours: one delta doc per day", len(ours) == N_DAYS, f"{community}: {len(ours)} docs")
        for i, day in enumerate(DAY_STRS):
            want = flat(t_days.get(i))
            if have_ours:
                o = ours.get(day)
                got = doc_figures(o) if o else None
                for f in figures:
                    note(f"ours vs truth: {f}", got is not None and got[f] == want[f],
                         f"{community} {day}: ours {got and got[f]}, truth {want[f]}")
            if base:  # the baseline ran for this community
                b = base.get(day)
                got = doc_figures(b) if b else None
                model = flat(r_days.get(i))
                for f in figures:
                    note(f"baseline vs reference model: {f}", got is not None and got[f] == model[f],
                         f"{community} {day}: baseline {got and got[f]}, model {model[f]}")
                agree = got is not None
                for f in ("records.added", "records.removed"):
                    ok = got is not None and got[f] == want[f]
                    agree = agree and ok
                    note(f"baseline vs truth: {f}", ok, f"{community} {day}: baseline {got and got[f]}, truth {want[f]}")
                    if not ok and got is not None and got[f] == model[f]:
                        explained[f] = explained.get(f, 0) + 1
                o = ours.get(day) if have_ours else None
                if agree and o is not None:
                    # Subcounts, on the days where the reference's record sets are the intended
                    # ones: each baseline item (by id) must be ours with the same records
                    # added/removed; items only ours have are counted apart (ours counts
                    # subjects and affiliations without id by their text, the reference drops them).
                    for key, *_ in SUBCOUNTS:
                        bi = {i["id"]: i["records"] for i in b["subcounts"].get(key, [])}
                        oi = {i["id"]: i["records"] for i in (o.get("subcounts") or {}).get(key, [])}
                        bad = [k for k in bi if oi.get(k) != bi[k]]
                        if key == "affiliations" and bad and all(oi.get(k) and all(
                                bi[k][s][m] >= oi[k][s][m] for s in ("added", "removed") for m in ("metadata_only", "with_files"))
                                for k in bad):
                            # The reference counts contributions (an affiliation both among a
                            # record's creators and its contributors counts twice), ours records.
                            note("ours vs baseline: subcounts.affiliations, reference higher (expected)", False,
                                 f"{community} {day}: " + "; ".join(f"{k}: ours {oi.get(k)} base {bi[k]}" for k in bad[:1]))
                            bad = []
                        note(f"ours vs baseline: subcounts.{key} per-id records", not bad,
                             f"{community} {day}: " + "; ".join(f"{k}: ours {oi.get(k)} base {bi[k]}" for k in bad[:2]))
                        extra = set(oi) - set(bi)
                        if extra:
                            c = checks.setdefault(f"(info) ours-only subcount items: {key}", {"compared": 0, "mismatches": 0,
                                                                                             "examples": [], "info": True})
                            c["compared"] += len(extra)
                            if len(c["examples"]) < 3:
                                c["examples"].append(f"{community} {day}: {sorted(extra)[:3]}")
        # Snapshots, every day.
        snap_want = snapshot_truth(t_days)
        last = snap_want[-1][0]
        m = members.get(community)
        note("truth: cumulative deltas == membership at year end (internal)",
             m is not None and [last["metadata_only"], last["with_files"]] == m, f"{community}: {last} vs {m}")
        if have_ours:
            snaps = fetch(host, snap_pat, community, "snapshot_date")
            note("ours: one snapshot doc per day", len(snaps) == N_DAYS, f"{community}: {len(snaps)} docs")
            for i, day in enumerate(DAY_STRS):
                s = snaps.get(day)
                got = (s or {}).get("total_records")
                note("ours snapshot vs truth: total_records", got == snap_want[i][0], f"{community} {day}: ours {got}, truth {snap_want[i][0]}")
                gotf = (s or {}).get("total_files")
                gotf = {k: int(round(v)) for k, v in gotf.items()} if isinstance(gotf, dict) else gotf
                note("ours snapshot vs truth: total_files", gotf == snap_want[i][1], f"{community} {day}: ours {gotf}, truth {snap_want[i][1]}")
        if have_base:
            bs = fetch(host, f"{prefix}bench-baseline-records-snapshot-*", community, "snapshot_date")
            if bs:
                got = bs.get(DAY_STRS[-1], {}).get("total_records")
                note(f"baseline snapshot {DAY_STRS[-1]} vs truth: total_records", got == last, f"{community}: baseline {got}, truth {last}")

    if have_ours:
        # Every community: the year's sums of our deltas and the last snapshot.
        aggs = {f"{w}_{s}_{m}": {"sum": {"field": f"{w}.{s}.{m}"}}
                for w in ("records",) for s in ("added", "removed") for m in ("metadata_only", "with_files")}
        aggs.update({f"files_{s}_{m}": {"sum": {"field": f"files.{s}.{m}"}} for s in ("added", "removed")
                     for m in ("file_count", "data_volume")})
        r = http("POST", f"{host}/{delta_pat}/_search?allow_no_indices=true", {"size": 0, "aggs": {
            "c": {"terms": {"field": "community_id", "size": 10000}, "aggs": aggs}}})
        buckets = {b["key"]: b for b in (r or {}).get("aggregations", {}).get("c", {}).get("buckets", [])}
        snaps = http("POST", f"{host}/{snap_pat}/_search?allow_no_indices=true", {
            "size": 10000, "query": {"range": {"snapshot_date": {"gte": f"{DAY_STRS[-1]}T00:00:00"}}},
            "_source": ["community_id", "total_records"]})
        last_snap = {h["_source"]["community_id"]: h["_source"].get("total_records")
                     for h in (snaps or {}).get("hits", {}).get("hits", [])}
        for community in all_comms:
            days = truth.get(community, {})
            want = {}
            for s in ("added", "removed"):
                want[f"records_{s}_metadata_only"] = sum(d[s]["records"][0] for d in days.values())
                want[f"records_{s}_with_files"] = sum(d[s]["records"][1] for d in days.values())
                want[f"files_{s}_file_count"] = sum(d[s]["files"][0] for d in days.values())
                want[f"files_{s}_data_volume"] = sum(d[s]["files"][1] for d in days.values())
            b = buckets.get(community)
            got = {k: int(round(b[k]["value"])) for k in want} if b else None
            diff = {k: (got[k] if got else None, v) for k, v in want.items() if not got or got[k] != v}
            note("ours vs truth, every community: year sums (records, files added/removed)", not diff,
                 f"{community}: (ours, truth) {diff}")
            m = members.get(community)
            note("ours vs truth, every community: last snapshot total_records", last_snap.get(community) == (
                {"metadata_only": m[0], "with_files": m[1]} if m else None), f"{community}: ours {last_snap.get(community)}, truth {m}")
    return checks, explained


# ------------------------------------------------------------------ main
def main():
    global LOG
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--search-host", default=os.environ.get("COMMUNITY_STATS_BENCH_SEARCH_HOST", "http://127.0.0.1:9280"))
    ap.add_argument("--prefix", default="bench-aggrec-", help="index prefix of the bench data (default bench-aggrec-)")
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
    log(f"node {host}: OpenSearch {version}; prefix {p}")

    gen = None
    if not a.regenerate and cached(host, p, a.records, a.communities):
        log(f"reusing the data under {p} ({a.records:,} records, {a.communities} communities; --regenerate to rebuild)")
        comms, records = build_model(a.records, a.communities)
    else:
        log(f"generating {a.records:,} records, {a.communities} communities and their community events ...")
        secs, comms, records = generate(host, p, a.records, a.communities, log=log)
        gen = {"seconds": secs}
        log(f"  done in {secs:.1f} s")
    n_events = expected_events(records)
    n_removed = sum(1 for r in records for _, rm in r["events"].values() if rm is not None)
    n_deleted = sum(1 for r in records if r["deleted_ts"] is not None)
    log(f"  {len(records):,} records ({sum(r['with_files'] for r in records):,} with files, {n_deleted} deleted, "
        f"{len({r['parent'] for r in records}):,} parents), {n_events:,} community events "
        f"({sum(len(r['events']) for r in records):,} added to communities, {n_removed} removed, {len(records):,} global)")
    all_comms = ["global", *comms]
    truth = truth_deltas(comms, records)
    ref = reference_deltas(comms, records)
    members = membership_at_end(comms, records)
    # Warm-up: one search over the records and the events, so that whichever runs first is not penalised.
    http("POST", f"{host}/{p}rdmrecords-records,{p}stats-community-events/_search",
         {"size": 0, "aggs": {"c": {"cardinality": {"field": "parent.id"}}}})

    result = {"node": version, "prefix": p, "records": a.records, "communities": a.communities,
              "community_events": n_events, "days": N_DAYS, "generation": gen}

    ours = None
    if not a.skip_ours:
        available, why = ours_available()
        if not available:
            log(f"(a) ours: not available ({why}); skipped")
            result["ours"] = {"error": f"not available: {why}"}
        else:
            log("(a) ours: running community-stats aggregate ...")
            ours = run_ours(host, p, a.ours_arg)
            result["ours"] = {k: v for k, v in ours.items() if k != "report"}
            result["ours_report"] = ours.get("report")
            if "error" in ours:
                log(f"(a) ours FAILED (rc {ours['returncode']}) after {ours['seconds']:.1f} s:\n{ours['error']}")
                if "docs" not in ours:
                    ours = None
            if ours:
                log(f"    {ours['seconds']:.1f} s, {ours['docs']:,} docs, searches {ours['searches']}, "
                    f"{ours['shard_queries']:,} shard queries, peak RSS {ours['peak_rss_mib']:.0f} MiB")
                rep = ours.get("report")
                if isinstance(rep, dict):
                    log(f"    our report: {json.dumps({k: v for k, v in rep.items() if not isinstance(v, (dict, list))})[:600]}")
                    for agg in rep.get("aggregators") or []:
                        cs = agg.get("communities") or []
                        slow = max(cs, key=lambda x: x.get("duration_seconds") or 0, default={})
                        log(f"    {agg.get('aggregator')}: {agg.get('duration_seconds', 0):.1f} s, {agg.get('documents')} docs, "
                            f"{agg.get('errors')} errors; {len(cs)} communities, slowest {slow.get('community_id')} "
                            f"{slow.get('duration_seconds', 0):.2f} s")
                if ours.get("stderr_tail"):
                    log(f"    our stderr (tail): {ours['stderr_tail'][-600:]}")

    base = ext = None
    subset = all_comms if a.full_baseline else all_comms[:max(1, min(a.baseline_communities, len(all_comms)))]
    if not a.skip_baseline:
        log(f"(b) baseline: sequential per-day Python loop over {len(subset)} of {len(all_comms)} communities "
            f"({', '.join(subset[:4])}{', ...' if len(subset) > 4 else ''}) ...")
        base = run_baseline(host, p, subset)
        ext = extrapolate(base, all_comms)
        result["baseline"] = {**ext, "peak_rss_mib": base["peak_rss_mib"], "bulk_requests": base["bulk_requests"],
                              "other_requests": base["other_requests"], "per_community": base["communities"]}
        log(f"    measured {base['wall_seconds']:.1f} s, {base['searches']:,} searches, {base['shard_queries']:,} shard queries, "
            f"peak RSS {base['peak_rss_mib']:.0f} MiB")

    # ---- table
    rows = []
    if ours:
        rows.append(("(a) ours: community-stats aggregate", ours["seconds"], ours["searches"], ours["shard_queries"],
                     ours["docs"], ours["peak_rss_mib"]))
    if ext:
        label = ("(b) baseline: per-day Python loop" +
                 (f" [EXTRAPOLATED from {ext['measured_communities']} of {len(all_comms)} communities]" if ext["extrapolated"] else ""))
        rows.append((label, ext["seconds"], ext["searches"], ext["shard_queries"], ext["docs"], base["peak_rss_mib"]))
    if rows:
        w = max(len(r[0]) for r in rows)
        log("")
        log(f"records aggregation (delta + snapshot, 'added' basis), {a.records:,} records, {n_events:,} community events, "
            f"{len(all_comms)} communities incl. global, {N_DAYS} days")
        log(f"{'run':<{w}} | {'wall s':>9} | {'searches':>9} | {'shard queries':>13} | {'docs written':>12} | {'peak RSS MiB':>12}")
        log(f"{'-' * w}-|-{'-' * 9}-|-{'-' * 9}-|-{'-' * 13}-|-{'-' * 12}-|-{'-' * 12}")
        for r in rows:
            log(f"{r[0]:<{w}} | {r[1]:>9.1f} | {fmt(r[2]):>9} | {fmt(r[3]):>13} | {fmt(r[4]):>12} | {r[5]:>12.0f}")
        if ext and ext["extrapolated"]:
            log(f"  (b) measured on {ext['measured_communities']} communities: {ext['measured_seconds']:.1f} s, "
                f"{ext['measured_searches']:,} searches, {ext['measured_docs']:,} docs; extrapolated linearly "
                f"(mean of the non-global ones, {ext['per_community_seconds']:.1f} s each) to {len(all_comms)}")
        if ours and ext:
            ratios = {"speedup": ext["seconds"] / ours["seconds"],
                      "searches_ratio": (ext["searches"] / ours["searches"]) if ours["searches"] else None,
                      "shard_queries_ratio": ext["shard_queries"] / ours["shard_queries"] if ours["shard_queries"] else None}
            result["ratios"] = ratios
            log(f"speed-up baseline / ours = {ratios['speedup']:.1f}x; searches baseline / ours = "
                f"{fmt(ratios['searches_ratio'], '.1f')}x; shard queries baseline / ours = {fmt(ratios['shard_queries_ratio'], '.1f')}x")
        if ours and ours["searches"] is None:
            log("  (ours reported no `searches`: its column is empty; shard queries = node query_total delta)")

    # ---- correctness (also on the documents of earlier runs, e.g. with --skip-ours / --skip-baseline)
    have_ours = ours is not None or (a.skip_ours and count(host, ours_indices(p)[0]) > 0)
    have_base = base is not None or count(host, f"{p}bench-baseline-records-delta-*") > 0
    if have_ours or have_base:
        compared = [s["id"] for s in base["communities"]][:10] if base else subset[:10]
        checks, explained = compare(host, p, compared, all_comms, truth, ref, members, have_ours, have_base)
        result["checks"] = checks
        result["baseline_vs_truth_explained_by_reference_model"] = explained
        log("")
        log(f"document checks: {len(compared)} communities x {N_DAYS} days ({', '.join(compared[:4])}"
            f"{', ...' if len(compared) > 4 else ''}), and every community's year sums and last snapshot "
            f"(truth = computed here from the generated records and events)")
        for name, c in checks.items():
            if c.get("info"):
                log(f"  {name:<72} {c['compared']:>6} items (expected: items without id)")
                for e in c["examples"][:2]:
                    log(f"      e.g. {e}")
                continue
            status = "ok" if not c["mismatches"] else f"{c['mismatches']} MISMATCHES"
            log(f"  {name:<72} {c['compared']:>6} compared: {status}")
            for e in c["examples"][:3] if c["mismatches"] else []:
                log(f"      e.g. {e}")
        bt = {k: v for k, v in checks.items() if k.startswith("baseline vs truth") and v["mismatches"]}
        if bt:
            log("  baseline vs truth mismatches are the reference's algorithm, not the baseline's code, where the "
                "baseline equals the reference model: " + ", ".join(
                    f"{k.split(': ')[1]} {explained.get(k.split(': ')[1], 0)} of {v['mismatches']}" for k, v in bt.items()))
            log("    (its 'added' lookup has no event_type filter: a removal day counts the record as added too; a record "
                "removed from a community and later deleted is removed again on its deletion day)")
    if a.json:
        print(json.dumps(result, indent=1, default=str))


if __name__ == "__main__":
    main()
