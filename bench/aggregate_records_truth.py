"""The figures bench/aggregate_records.py checks the documents against, computed from the
data model (bench/aggregate_records_data.py):

  - truth_deltas: the intended semantics (ours), per (community or "global", day): records,
    parents and files added and removed, uploaders;
  - reference_deltas: the same figures as the reference's algorithm computes them (to
    validate the baseline, and explain where it differs from the truth);
  - snapshot_truth, membership_at_end: the cumulative figures.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from aggregate_data import N_DAYS  # noqa: E402
from aggregate_records_data import START_TS, day_index  # noqa: E402


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
            rem_days = ({day_index(removed)} if removed is not None else set()) | (
                {del_day} if del_day is not None else set()
            )
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
        for c, (_, removed) in r["events"].items():
            if removed is None and r["deleted_ts"] is None:
                out[c][k] += 1
    return out
