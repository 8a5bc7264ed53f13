"""Bench data for bench/aggregate.py: one year of enriched (v2) usage events written straight
into the monthly v2 indices, the communities, and the exact per-day counts ("truth").

Seeded and deterministic: the same options give the same documents. The events are built
as JSON text from pre-serialized record fragments and POSTed as raw `_bulk` NDJSON
(urllib, a few requests in flight), which is several times faster than opensearch-py.

Shape (see src/templates/record-view-v2.0.0.json / file-download-v2.0.0.json):
  - records: recid, parent_recid, 1 community (25 %: a 2nd), resource_type, access_status,
    1-2 languages, 1 rights, 0-2 funders, 1-3 affiliations, publisher, journal_title (70 %),
    files (90 % of the records have 1-3 files; file_types = their extensions);
  - popularity: a Zipf-like weight per record (a few popular records, a long tail);
  - views ~70 %, downloads ~30 % (downloads only of records with files), timestamps uniform
    over the year at second resolution (so a few fall on 23:59:59), a visitor pool of
    events/5 visitors, 40 countries.
The "truth" is the exact number of view/download events and the download volume per
(community or "global", day), kept in the `<prefix>bench-meta` document (not indexed).
"""

import datetime as dt
import hashlib
import json
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import bulk_error, count, delete, http, post_bulks  # noqa: E402

SEED = 20250101
START = dt.date(2025, 1, 1)
END = dt.date(2025, 12, 31)
N_DAYS = (END - START).days + 1
DAY_STRS = [(START + dt.timedelta(days=i)).isoformat() for i in range(N_DAYS)]

RESOURCE_TYPES = [
    ("publication-article", "Journal article"),
    ("dataset", "Dataset"),
    ("software", "Software"),
    ("image-figure", "Figure"),
    ("publication-book", "Book"),
    ("publication-section", "Book section"),
    ("presentation", "Presentation"),
    ("poster", "Poster"),
    ("publication-preprint", "Preprint"),
    ("lesson", "Lesson"),
    ("video", "Video/Audio"),
    ("other", "Other"),
]
ACCESS = ["open", "open", "open", "restricted", "embargoed", "metadata-only"]
LANGUAGES = [
    (c, n)
    for c, n in [
        ("eng", "English"),
        ("fra", "French"),
        ("deu", "German"),
        ("spa", "Spanish"),
        ("ita", "Italian"),
        ("por", "Portuguese"),
        ("nld", "Dutch"),
        ("pol", "Polish"),
        ("rus", "Russian"),
        ("jpn", "Japanese"),
        ("zho", "Chinese"),
        ("ara", "Arabic"),
        ("hin", "Hindi"),
        ("swe", "Swedish"),
        ("tur", "Turkish"),
    ]
]
RIGHTS = [
    ("cc-by-4.0", "Creative Commons Attribution 4.0 International"),
    ("cc-by-sa-4.0", "Creative Commons Attribution Share Alike 4.0 International"),
    ("cc-by-nc-4.0", "Creative Commons Attribution Non Commercial 4.0 International"),
    ("cc0-1.0", "Creative Commons Zero v1.0 Universal"),
    ("mit", "MIT License"),
    ("apache-2.0", "Apache License 2.0"),
    ("gpl-3.0", "GNU General Public License v3.0"),
    ("arr", "All rights reserved"),
]
FUNDERS = [(f"fund{i:04d}", f"Funder {i}") for i in range(40)]
AFFILIATIONS = [(f"aff{i:05d}", f"Institution {i}") for i in range(300)]
PUBLISHERS = [f"Publisher {i}" for i in range(60)]
JOURNALS = [f"Journal of Things {i}" for i in range(150)]
COUNTRIES = [
    "US",
    "DE",
    "FR",
    "GB",
    "BR",
    "IN",
    "JP",
    "ZA",
    "CA",
    "AU",
    "MX",
    "AR",
    "ES",
    "IT",
    "NL",
    "SE",
    "NO",
    "FI",
    "DK",
    "PL",
    "CZ",
    "AT",
    "CH",
    "BE",
    "PT",
    "IE",
    "GR",
    "TR",
    "RU",
    "UA",
    "CN",
    "KR",
    "SG",
    "ID",
    "PH",
    "NG",
    "KE",
    "EG",
    "CL",
    "CO",
]
EXTENSIONS = ["pdf", "csv", "zip", "png", "docx", "txt", "json", "xlsx", "tif", "mp4"]


def rdm_id(rng):
    alpha = "0123456789abcdefghjkmnpqrstvwxyz"
    s = "".join(rng.choice(alpha) for _ in range(10))
    return s[:5] + "-" + s[5:]


def community_ids(n):
    return [f"comm-{i:03d}" for i in range(n)]


def days(start=START, end=END):
    d = start
    while d <= end:
        yield d
        d += dt.timedelta(days=1)


def event_indices(prefix):
    return f"{prefix}events-stats-record-view-*,{prefix}events-stats-file-download-*"


def make_records(rng, n_records, comms):
    """The records: dicts with the enrichment fields, plus their files."""
    records = []
    for _ in range(n_records):
        recid, parent = rdm_id(rng), rdm_id(rng)
        c = [rng.choice(comms)] if comms else []
        if comms and rng.random() < 0.25:
            other = rng.choice(comms)
            if other not in c:
                c.append(other)
        rt = rng.choice(RESOURCE_TYPES)
        has_files = rng.random() < 0.9
        files = []
        if has_files:
            for k in range(rng.randint(1, 3)):
                ext = rng.choice(EXTENSIONS)
                files.append(
                    {
                        "file_id": f"{rng.getrandbits(128):032x}",
                        "file_key": f"file{k + 1}.{ext}",
                        "size": rng.randint(1_000, 50_000_000),
                        "ext": ext,
                    }
                )
        access = "metadata-only" if not has_files else rng.choice(ACCESS[:5])
        src = {
            "recid": recid,
            "parent_recid": parent,
            "community_ids": c,
            "resource_type": {"id": rt[0], "title": {"en": rt[1]}},
            "access_status": access,
            "languages": [{"id": a, "title": {"en": b}} for a, b in rng.sample(LANGUAGES, rng.randint(1, 2))],
            "rights": [{"id": a, "title": {"en": b}} for a, b in rng.sample(RIGHTS, 1)],
            "funders": [{"id": a, "name": b} for a, b in rng.sample(FUNDERS, rng.randint(0, 2))],
            "affiliations": [{"id": a, "name": b} for a, b in rng.sample(AFFILIATIONS, rng.randint(1, 3))],
            "publisher": rng.choice(PUBLISHERS),
            "file_types": sorted({f["ext"] for f in files}),
            "is_robot": False,
            "is_machine": False,
            "via_api": False,
        }
        if rng.random() < 0.7:
            src["journal_title"] = rng.choice(JOURNALS)
        records.append({"src": src, "files": files, "bucket_id": f"{rng.getrandbits(128):032x}", "comms": c})
    weights = [1.0 / (i + 10) ** 0.8 for i in range(n_records)]
    rng.shuffle(weights)  # popularity independent of creation order
    for r, w in zip(records, weights):
        r["weight"] = w
    return records


def cumulate(ws):
    out, s = [], 0.0
    for w in ws:
        s += w
        out.append(s)
    return out


def last_day(n_days=N_DAYS):
    """The last day of ``n_days`` days from START."""
    return START + dt.timedelta(days=n_days - 1)


def generate(
    host, prefix, n_events, n_records, n_communities, seed=SEED, batch=5000, in_flight=2, log=print, n_days=N_DAYS
):
    """(Re)creates the bench data under ``prefix`` (``n_days`` days from START); returns
    (seconds, documents, truth)."""

    t0 = time.perf_counter()
    delete(host, f"{prefix}*")
    install_templates(host, prefix)

    comms = community_ids(n_communities)
    write_communities(host, prefix, comms)

    rng = random.Random(seed)
    records = make_records(rng, n_records, comms)
    with_files = [r for r in records if r["files"]]
    cum_all = cumulate(r["weight"] for r in records)
    cum_files = cumulate(r["weight"] for r in with_files)
    # Pre-serialized record fragments (everything except the per-event fields), without braces.
    for r in records:
        r["frag"] = json.dumps(r["src"], separators=(",", ":"))[1:-1]
        r["view_uid"] = f"ui_{r['src']['recid']}"
        r["keys"] = ["global", *r["comms"]]
        r["file_frags"] = [
            (
                json.dumps(
                    {
                        "bucket_id": r["bucket_id"],
                        "file_id": f["file_id"],
                        "file_key": f["file_key"],
                        "size": f["size"],
                    },
                    separators=(",", ":"),
                )[1:-1],
                f"{r['bucket_id']}_{f['file_id']}",
                f["size"],
            )
            for f in r["files"]
        ]
    visitors = [f"{rng.getrandbits(224):056x}" for _ in range(max(10, n_events // 5))]
    day_strs = [d.isoformat() for d in days(START, last_day(n_days))]
    hms = [f"{m // 60:02d}:{m % 60:02d}" for m in range(1440)]
    # truth[key] = [views per day], [downloads per day], [volume per day]
    truth = {k: [[0] * n_days, [0] * n_days, [0] * n_days] for k in ["global", *comms]}

    n_views = round(n_events * 0.7) if with_files else n_events
    n_downloads = n_events - n_views
    view_tpl = (
        '{"index":{"_index":"%sevents-stats-record-view-%s-v2.0.0","_id":"%s"}}\n'
        '{"timestamp":"%s","visitor_id":"%s","unique_session_id":"%s","country":"%s","unique_id":"%s",'
        '"updated_timestamp":"%s",%s}\n'
    )
    dl_tpl = (
        '{"index":{"_index":"%sevents-stats-file-download-%s-v2.0.0","_id":"%s"}}\n'
        '{"timestamp":"%s","visitor_id":"%s","unique_session_id":"%s","country":"%s","unique_id":"%s",'
        '"updated_timestamp":"%s",%s,%s}\n'
    )

    def chunks():
        seq = 0
        for kind, n, pool, cum in (("v", n_views, records, cum_all), ("d", n_downloads, with_files, cum_files)):
            done = 0
            while done < n:
                k = min(batch, n - done)
                picks = rng.choices(pool, cum_weights=cum, k=k)
                parts = []
                for r in picks:
                    secs = rng.randrange(n_days * 86400)
                    d, rem = divmod(secs, 86400)
                    ts = f"{day_strs[d]}T{hms[rem // 60]}:{rem % 60:02d}"
                    visitor = visitors[rng.randrange(len(visitors))]
                    session = hashlib.sha1((visitor + ts[:13]).encode()).hexdigest()
                    country = COUNTRIES[rng.randrange(len(COUNTRIES))]
                    _id = f"{ts}-{kind}{seq:08d}"
                    seq += 1
                    if kind == "v":
                        parts.append(
                            view_tpl
                            % (prefix, ts[:7], _id, ts, visitor, session, country, r["view_uid"], ts, r["frag"])
                        )
                        for key in r["keys"]:
                            truth[key][0][d] += 1
                    else:
                        ffrag, uid, size = r["file_frags"][rng.randrange(len(r["file_frags"]))]
                        parts.append(
                            dl_tpl % (prefix, ts[:7], _id, ts, visitor, session, country, uid, ts, r["frag"], ffrag)
                        )
                        for key in r["keys"]:
                            t = truth[key]
                            t[1][d] += 1
                            t[2][d] += size
                done += k
                yield k, "".join(parts).encode()

    written, errors, last = 0, 0, time.perf_counter()

    def bodies():
        nonlocal written, last
        for k, body in chunks():
            yield body
            written += k
            if time.perf_counter() - last > 15:
                last = time.perf_counter()
                log(f"  ... {written:,} events sent ({written / (last - t0):,.0f}/s)")

    def settle(reply):
        nonlocal errors
        bad = bulk_error(reply)
        if bad is not None:
            errors += 1
            if errors <= 3:
                log(f"  bulk error: {json.dumps(bad)[:400]}")

    post_bulks(host, bodies(), in_flight, settle)
    if errors:
        raise SystemExit(f"{errors} bulk requests had errors")
    http("POST", f"{host}/{event_indices(prefix)}/_refresh")
    n = count(host, event_indices(prefix))
    meta = {
        "events": n_events,
        "records": n_records,
        "communities": n_communities,
        "seed": seed,
        "days": n_days,
        "count": n,
        "truth": truth,
    }
    write_meta(host, prefix, meta, {"events": {"type": "long"}})
    return time.perf_counter() - t0, n, truth


def write_meta(host, prefix, meta, properties):
    """The data set's description, `<prefix>bench-meta/_doc/meta` (``properties`` indexed)."""
    http(
        "PUT",
        f"{host}/{prefix}bench-meta",
        {
            "settings": {"number_of_shards": 1, "number_of_replicas": 0},
            "mappings": {"dynamic": False, "properties": properties},
        },
    )
    r = http("PUT", f"{host}/{prefix}bench-meta/_doc/meta?refresh=true", meta)
    if (r or {}).get("result") not in ("created", "updated"):
        raise SystemExit(f"writing the bench meta document failed: {str(r)[:400]}")


def read_meta(host, prefix):
    """The data set's description written by write_meta, None if there is none."""
    r = http("GET", f"{host}/{prefix}bench-meta/_doc/meta")
    if not r or not r.get("found"):
        return None
    return r["_source"]


def write_communities(host, prefix, comms):
    """`<prefix>communities-communities-v1.0.0` (alias `<prefix>communities`), opted in."""
    http(
        "PUT",
        f"{host}/{prefix}communities-communities-v1.0.0",
        {
            "settings": {"index": {"number_of_shards": 1, "number_of_replicas": 0}},
            "aliases": {f"{prefix}communities": {}},
            "mappings": {
                "dynamic": True,
                "properties": {
                    "id": {"type": "keyword"},
                    "uuid": {"type": "keyword"},
                    "slug": {"type": "keyword"},
                    "created": {"type": "date"},
                },
            },
        },
    )
    lines = []
    for i, c in enumerate(comms):
        lines.append(json.dumps({"index": {"_index": f"{prefix}communities-communities-v1.0.0", "_id": c}}))
        lines.append(
            json.dumps(
                {
                    "id": c,
                    "uuid": c,
                    "slug": f"bench-community-{i}",
                    "created": "2024-01-01T00:00:00",
                    "metadata": {"title": f"Bench community {i}"},
                    "access": {"visibility": "public"},
                    "custom_fields": {"stats:dashboard_enabled": True},
                }
            )
        )
    r = http("POST", f"{host}/_bulk?refresh=true", ("\n".join(lines) + "\n").encode(), "application/x-ndjson")
    if (r or {}).get("errors"):
        raise SystemExit(f"writing communities failed: {json.dumps(r)[:400]}")


def cached(host, prefix, n_events, n_records, n_communities, seed=SEED, n_days=N_DAYS):
    """The truth if ``prefix`` already holds exactly this data set, else None."""
    m = read_meta(host, prefix)
    if m is None or (m.get("events"), m.get("records"), m.get("communities"), m.get("seed"), m.get("days")) != (
        n_events,
        n_records,
        n_communities,
        seed,
        n_days,
    ):
        return None
    http("POST", f"{host}/{event_indices(prefix)}/_refresh")
    if count(host, event_indices(prefix)) != n_events or count(host, f"{prefix}communities") != n_communities:
        return None
    return m["truth"]


# ------------------------------------------------------------------ shared with bench/aggregate_records.py
def install_templates(host, prefix):
    """The package's index templates, named with ``prefix``."""
    from invenio_community_stats import _core

    for name in _core.index_template_names():
        r = http("PUT", f"{host}/_index_template/{prefix}{name}", json.loads(_core.index_template(name, prefix)))
        if not (r or {}).get("acknowledged"):
            raise SystemExit(f"installing template {name} failed: {r}")
