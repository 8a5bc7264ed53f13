"""The data of bench/aggregate_records.py (its docstring says what it holds): the records
index (`<prefix>rdmrecords-records`), the communities and the community events of a seeded
model of 2025 (build_model: the same sizes give the same data). The model is kept in memory
to compute the truth (bench/aggregate_records_truth.py); `<prefix>bench-meta` says which
data set the prefix holds, so that it is reused when it matches.
"""

import datetime as dt
import json
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import aggregate_data as data  # noqa: E402
from aggregate_data import N_DAYS  # noqa: E402
from common import bulk_error, count, delete, http  # noqa: E402

SEED = 20250202
START, END = data.START, data.END
START_TS = int(dt.datetime(START.year, START.month, START.day, tzinfo=dt.timezone.utc).timestamp())
END_TS = START_TS + N_DAYS * 86400 - 1  # 2025-12-31T23:59:59
N_USERS = 500

KW = {"type": "keyword"}
TEXT_KW = {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}}
TITLE = {"properties": {"en": TEXT_KW}}
AFF = {"properties": {"affiliations": {"properties": {"id": KW, "name": TEXT_KW}}}}
# Like tests/records_fixture.py RECORDS_MAPPING, plus what the reference's terms aggs need.
RECORDS_MAPPING = {
    "dynamic": True,
    "date_detection": False,
    "properties": {
        "id": KW,
        "pid": {"properties": {"pk": {"type": "long"}}},
        "created": {"type": "date"},
        "updated": {"type": "date"},
        "is_published": {"type": "boolean"},
        "is_deleted": {"type": "boolean"},
        "deletion_status": KW,
        "bucket_id": KW,
        "versions": {"properties": {"index": {"type": "integer"}, "is_latest": {"type": "boolean"}}},
        "parent": {
            "properties": {
                "id": KW,
                "communities": {"properties": {"ids": KW, "default": KW}},
                "access": {"properties": {"owned_by": {"properties": {"user": KW}}}},
            }
        },
        "access": {"properties": {"status": KW, "record": KW, "files": KW}},
        "tombstone": {"properties": {"removal_date": {"type": "date"}, "removal_reason": {"properties": {"id": KW}}}},
        "files": {
            "properties": {
                "enabled": {"type": "boolean"},
                "count": {"type": "integer"},
                "total_bytes": {"type": "long"},
                "entries": {
                    "properties": {"key": KW, "ext": KW, "file_id": KW, "mimetype": KW, "size": {"type": "long"}}
                },
            }
        },
        "metadata": {
            "properties": {
                "title": {"type": "text"},
                "publication_date": KW,
                "resource_type": {"properties": {"id": KW, "title": TITLE}},
                "languages": {"properties": {"id": KW, "title": TITLE}},
                "subjects": {"properties": {"id": KW, "subject": TEXT_KW, "scheme": KW}},
                "rights": {"properties": {"id": KW, "title": TITLE}},
                "funding": {
                    "properties": {
                        "funder": {"properties": {"id": KW, "name": TEXT_KW}},
                        "award": {"properties": {"id": KW}},
                    }
                },
                "creators": AFF,
                "contributors": AFF,
                "publisher": TEXT_KW,
            }
        },
        "custom_fields": {"properties": {"journal:journal": {"properties": {"title": TEXT_KW}}}},
    },
}
SUBJECTS = [(f"subj{i:03d}", f"Subject {i}") for i in range(80)]
FILE_ACCESS = ["open", "open", "open", "restricted", "embargoed"]


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
                entries.append(
                    {
                        "key": f"file{k + 1}.{ext}",
                        "ext": ext,
                        "size": rng.randint(1_000, 500_000_000),
                        "file_id": f"{rng.getrandbits(128):032x}",
                        "mimetype": f"application/{ext}",
                    }
                )
        rt = rng.choice(data.RESOURCE_TYPES)
        funding = []
        for f_id, f_name in rng.sample(data.FUNDERS, rng.randint(0, 2)):
            funding.append(
                {
                    "funder": {"id": f_id, "name": f_name}
                    if rng.random() < 0.85
                    else {"name": f"Local Funder {rng.randrange(30)}"},
                    "award": {"id": f"award-{rng.randrange(10000):05d}"},
                }
            )

        def people(n):
            out = []
            for _ in range(n):
                affs = []
                for a_id, a_name in rng.sample(data.AFFILIATIONS, rng.randint(0, 2)):
                    affs.append(
                        {"id": a_id, "name": a_name}
                        if rng.random() < 0.9
                        else {"name": f"Unlisted Institute {rng.randrange(50)}"}
                    )
                out.append(
                    {
                        "person_or_org": {"type": "personal", "name": f"Person {rng.randrange(5000)}"},
                        "affiliations": affs,
                    }
                )
            return out

        subjects = []
        for s_id, s_name in rng.sample(SUBJECTS, rng.randint(0, 3)):
            subjects.append(
                {"id": s_id, "subject": s_name, "scheme": "FOS"}
                if rng.random() < 0.9
                else {"subject": f"Keyword {rng.randrange(100)}"}
            )
        micros = rng.randrange(1_000_000)
        metadata = {
            "title": f"Record {i}",
            "publication_date": f"{2000 + rng.randrange(26)}",
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
            "id": recid,
            "pid": {"pk": i + 1},
            "created": iso(ts, micros),
            "updated": iso(ts, micros),
            "is_published": True,
            "is_deleted": False,
            "deletion_status": "P",
            "bucket_id": f"{rng.getrandbits(128):032x}",
            "parent": {
                "id": parent,
                "communities": {"ids": list(rc), "default": rc[0] if rc else None},
                "access": {"owned_by": {"user": owner}},
            },
            "access": {
                "status": rng.choice(FILE_ACCESS) if has_files else "metadata-only",
                "record": "public",
                "files": "public" if has_files else "restricted",
            },
            "files": {
                "enabled": has_files,
                "count": len(entries),
                "total_bytes": sum(e["size"] for e in entries),
                "entries": entries,
            },
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
            doc.update(
                is_deleted=True,
                deletion_status="D",
                tombstone={"removal_date": iso(deleted_ts), "removal_reason": {"id": "spam"}},
            )
        records.append(
            {
                "doc": doc,
                "id": recid,
                "ts": ts,
                "micros": micros,
                "with_files": has_files,
                "nfiles": len(entries),
                "bytes": sum(e["size"] for e in entries),
                "parent": parent,
                "owner": owner,
                "comms": list(rc),
                "events": events,
                "deleted_ts": deleted_ts,
            }
        )
    return comms, records


def event_docs(records):
    """(_id, document) of every community event (global ones included)."""
    for r in records:
        base = {
            "record_id": r["id"],
            "record_created_date": r["doc"]["created"],
            "record_published_date": r["doc"]["metadata"]["publication_date"] + "-01-01",
            "is_deleted": r["deleted_ts"] is not None,
        }
        if r["deleted_ts"] is not None:
            base["deleted_date"] = iso(r["deleted_ts"])
        upd = iso(r["deleted_ts"]) if r["deleted_ts"] is not None else None
        todo = [("global", "added", r["ts"])]
        for c, (added, removed) in r["events"].items():
            todo.append((c, "added", added))
            if removed is not None:
                todo.append((c, "removed", removed))
        for c, kind, ts in todo:
            doc = dict(
                base,
                community_id=c,
                event_type=kind,
                event_date=iso(ts),
                timestamp=iso(ts),
                updated_timestamp=upd or iso(ts),
            )
            yield f"{r['id']}-{c}-{kind}", doc


def expected_events(records):
    return sum(1 + len(r["events"]) + sum(1 for a, rm in r["events"].values() if rm is not None) for r in records)


def generate(host, prefix, n_records, n_communities, log=print):
    """(Re)creates the bench data under ``prefix``; returns (seconds, comms, records)."""

    t0 = time.perf_counter()
    delete(host, f"{prefix}*")
    data.install_templates(host, prefix)
    comms, records = build_model(n_records, n_communities)
    data.write_communities(host, prefix, comms)
    rec_index = f"{prefix}rdmrecords-records-record-v7.0.0"
    r = http(
        "PUT",
        f"{host}/{rec_index}",
        {
            "settings": {"index": {"number_of_shards": 1, "number_of_replicas": 0}},
            "aliases": {f"{prefix}rdmrecords-records": {}},
            "mappings": RECORDS_MAPPING,
        },
    )
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
        bad = bulk_error(http("POST", f"{host}/_bulk", ("\n".join(buf) + "\n").encode(), "application/x-ndjson"))
        if bad is not None:
            errors += 1
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
    data.write_meta(
        host, prefix, {"records": n_records, "communities": n_communities, "seed": SEED, "events": n_ev}, {}
    )
    return time.perf_counter() - t0, comms, records


def cached(host, prefix, n_records, n_communities):
    """True if ``prefix`` already holds exactly this data set."""
    m = data.read_meta(host, prefix)
    if m is None or (m.get("records"), m.get("communities"), m.get("seed")) != (n_records, n_communities, SEED):
        return False
    http("POST", f"{host}/{prefix}rdmrecords-records,{prefix}stats-community-events-*/_refresh?ignore_unavailable=true")
    return (
        count(host, f"{prefix}rdmrecords-records") == n_records
        and count(host, f"{prefix}stats-community-events-*") == m.get("events")
        and count(host, f"{prefix}communities") == n_communities
    )
