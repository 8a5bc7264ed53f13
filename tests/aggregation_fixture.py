"""Enriched usage events for the aggregation tests, written straight into the v2 indices
(with our templates), and the expected daily figures computed from those same events,
independently of the code under test."""

import json
from collections import defaultdict

from invenio_community_stats import _core

import invenio_rdm

COMMUNITY_A = "c0a1a1a1-0000-4000-8000-00000000000a"  # slug alpha, dashboard enabled
COMMUNITY_B = "c0b2b2b2-0000-4000-8000-00000000000b"  # slug beta, dashboard disabled
FIRST_DAY, LAST_DAY = 4, 16  # June 2025, the reference scenario's timeline


def install_templates(search, prefix):
    for name in _core.index_template_names():
        search.ok("PUT", f"_index_template/{prefix}{name}", json.loads(_core.index_template(name, prefix)))


def write_communities(search, prefix):
    """The two communities, in the instance's own communities index (invenio-communities'
    mapping, with the opt-in custom field)."""
    invenio_rdm.write(
        search,
        prefix,
        [],
        [invenio_rdm.community(COMMUNITY_A, "alpha", True), invenio_rdm.community(COMMUNITY_B, "beta", False)],
    )


RECORDS = {
    # recid: (parent, communities, has files, metadata)
    "r1": (
        "p1",
        [COMMUNITY_A],
        True,
        {
            "resource_type": {"id": "dataset", "title": {"en": "Dataset"}},
            "access_status": "open",
            "languages": [{"id": "eng", "title": {"en": "English"}}],
            "funders": [{"id": "f1", "name": "European Commission"}],
            "affiliations": [{"id": "a1", "name": "CERN"}],
            "publisher": "Zenodo",
            "file_types": ["pdf"],
        },
    ),
    "r2": (
        "p2",
        [COMMUNITY_A],
        True,
        {
            "resource_type": {"id": "image", "title": {"en": "Image"}},
            "access_status": "open",
            "funders": [{"name": "Local Trust"}],
            "affiliations": [{"name": "Free-text University"}],
            "file_types": ["png"],
        },
    ),
    "r3": (
        "p3",
        [COMMUNITY_A],
        True,
        {
            "resource_type": {"id": "dataset", "title": {"en": "Dataset"}},
            "access_status": "restricted",
            "file_types": ["csv"],
            "journal_title": "J. Tests",
        },
    ),
    "r4": (
        "p3",
        [COMMUNITY_A],
        False,
        {"resource_type": {"id": "publication", "title": {"en": "Publication"}}, "access_status": "metadata-only"},
    ),
    "r5": (
        "p5",
        [],
        True,
        {
            "resource_type": {"id": "dataset", "title": {"en": "Dataset"}},
            "access_status": "open",
            "file_types": ["pdf"],
        },
    ),
    "r6": ("p6", [COMMUNITY_B], False, {"access_status": "open"}),
}


def scenario_events():
    """(kind, _id, document) of every event: 20 views per record, 20 downloads per record
    with files, spread over 2025-06-04..16; 4 early views of r1 on 06-03; views at
    23:59:59 and 00:00:00."""
    events = []
    n = 0
    for recid, (parent, comms, files, md) in RECORDS.items():
        kinds = ["view", "download"] if files else ["view"]
        for kind in kinds:
            for i in range(20):
                n += 1
                day = FIRST_DAY + (i * 5 + len(recid) + ord(recid[-1])) % (LAST_DAY - FIRST_DAY + 1)
                ts = f"2025-06-{day:02d}T{(i * 7) % 24:02d}:{(i * 13) % 60:02d}:{(i * 17) % 60:02d}"
                events.append((kind, f"{kind}-{n}", _doc(recid, parent, comms, md, ts, f"v{(n * 7) % 37}", kind, i)))
    for i in range(4):
        events.append(
            (
                "view",
                f"early-{i}",
                _doc("r1", "p1", [COMMUNITY_A], RECORDS["r1"][3], f"2025-06-03T1{i}:00:00", f"v{i}", "view", i),
            )
        )
    events.append(
        (
            "view",
            "edge-late",
            _doc("r1", "p1", [COMMUNITY_A], RECORDS["r1"][3], "2025-06-10T23:59:59", "late", "view", 0),
        )
    )
    events.append(
        (
            "view",
            "edge-early",
            _doc("r2", "p2", [COMMUNITY_A], RECORDS["r2"][3], "2025-06-11T00:00:00", "early", "view", 0),
        )
    )
    return events


def _doc(recid, parent, comms, md, ts, visitor, kind, i):
    """An enriched (v2) event: invenio-stats' fields (a null referrer, a null country now and
    then) plus the migration's enrichment."""
    d = {
        "timestamp": ts,
        "recid": recid,
        "parent_recid": parent,
        "visitor_id": visitor,
        "community_ids": comms,
        "unique_session_id": f"s-{visitor}",
        "country": ["CH", "US", None][i % 3],
        "is_robot": False,
        "is_machine": False,
        "referrer": None,
        "via_api": False,
        "updated_timestamp": f"{ts}.000000+00:00",
    }
    d.update(md)
    if kind == "download":
        d.update(
            {
                "file_id": f"{recid}-file-{i % 2}",
                "file_key": f"data-{i % 2}.bin",
                "bucket_id": f"b-{recid}",
                "size": 1000 * (ord(recid[-1]) - 48) + (i % 2),
            }
        )
        d["unique_id"] = f"b-{recid}_{d['file_id']}"
    else:
        d["unique_id"] = f"ui_{recid}"
    return d


def write_events(search, prefix, events, kinds=("view", "download")):
    actions = [
        (f"{invenio_rdm.legacy_index(prefix, kind, doc['timestamp'])}-v2.0.0", _id, doc)
        for kind, _id, doc in events
        if kind in kinds
    ]
    invenio_rdm.bulk(search, actions)


def expected_daily(events, community):
    """day -> {"view"/"download": {total_events, unique_visitors, unique_records,
    unique_parents[, unique_files, total_volume]}} for one community (or global)."""
    acc = defaultdict(lambda: {"view": defaultdict(set), "download": defaultdict(set)})
    sums = defaultdict(lambda: {"view": [0, 0], "download": [0, 0]})
    for kind, _id, d in events:
        if community != "global" and community not in d["community_ids"]:
            continue
        day = d["timestamp"][:10]
        a = acc[day][kind]
        a["visitors"].add(d["visitor_id"])
        a["records"].add(d["recid"])
        a["parents"].add(d["parent_recid"])
        if kind == "download":
            a["files"].add(d["file_id"])
            sums[day][kind][1] += d["size"]
        sums[day][kind][0] += 1
    out = {}
    for day in acc:
        out[day] = {}
        for kind in ("view", "download"):
            a = acc[day][kind]
            m = {
                "total_events": sums[day][kind][0],
                "unique_visitors": len(a["visitors"]),
                "unique_records": len(a["records"]),
                "unique_parents": len(a["parents"]),
            }
            if kind == "download":
                m.update({"unique_files": len(a["files"]), "total_volume": sums[day][kind][1]})
            out[day][kind] = m
    return out


def write_scenario(search, prefix):
    """The scenario under ``prefix``: our templates, the communities and the events; returns the events."""
    install_templates(search, prefix)
    write_communities(search, prefix)
    events = scenario_events()
    write_events(search, prefix, events)
    return events
