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

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import aggregate_common as shared  # noqa: E402
import aggregate_records_data as records_data  # noqa: E402
from aggregate_common import CLI, Checks, log, measured, search_sources  # noqa: E402
from aggregate_data import DAY_STRS, N_DAYS  # noqa: E402
from aggregate_records_baseline import SUBCOUNTS, baseline_worker  # noqa: E402
from aggregate_records_truth import (  # noqa: E402
    doc_figures,
    flat,
    membership_at_end,
    reference_deltas,
    snapshot_truth,
    truth_deltas,
)
from common import count, delete, http  # noqa: E402

AGG_TYPES = ("community-records-delta-added-agg", "community-records-snapshot-added-agg")


# ------------------------------------------------------------------ (a) ours
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
    cmd = shared.aggregate_command(host, prefix, AGG_TYPES, *extra)
    figures, out, err = measured(host, cmd)
    rc = figures["returncode"]
    res = {"command": shared.shown(cmd), **figures, "report": shared.parse_report(out)}
    if rc != 0 and res["report"] is None:
        res["error"] = (err or out).strip()[-2000:]
        return res
    res.update(shared.our_outputs(host, f"{prefix}stats-community-records-*", delta_pat, snap_pat, res["report"], err))
    if rc != 0:
        res["error"] = f"exit code {rc}: " + (err or "").strip()[-1500:]
    return res


def aggregator_lines(rep):
    """Per aggregator of our report: its time, documents, errors and slowest community."""
    for agg in rep.get("aggregators") or []:
        cs = agg.get("communities") or []
        slow = max(cs, key=lambda x: x.get("duration_seconds") or 0, default={})
        yield (
            f"    {agg.get('aggregator')}: {agg.get('duration_seconds', 0):.1f} s, {agg.get('documents')} docs, "
            f"{agg.get('errors')} errors; {len(cs)} communities, slowest {slow.get('community_id')} "
            f"{slow.get('duration_seconds', 0):.2f} s"
        )


# ------------------------------------------------------------------ comparison
def fetch(host, index, community, date_field, size=1000):
    return {str(s.get(date_field, ""))[:10]: s for s in search_sources(host, index, community, date_field, size)}


def compare(host, prefix, compared, all_comms, truth, ref, members, have_ours, have_base):
    """Mismatch counts (and a few examples) per check."""
    checks = Checks()
    note = checks.note
    delta_pat, snap_pat = ours_indices(prefix)
    figures = (
        "records.added",
        "records.removed",
        "parents.added",
        "parents.removed",
        "files.added",
        "files.removed",
        "uploaders",
    )
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
                    note(
                        f"ours vs truth: {f}",
                        got is not None and got[f] == want[f],
                        f"{community} {day}: ours {got and got[f]}, truth {want[f]}",
                    )
            if base:  # the baseline ran for this community
                b = base.get(day)
                got = doc_figures(b) if b else None
                model = flat(r_days.get(i))
                for f in figures:
                    note(
                        f"baseline vs reference model: {f}",
                        got is not None and got[f] == model[f],
                        f"{community} {day}: baseline {got and got[f]}, model {model[f]}",
                    )
                agree = got is not None
                for f in ("records.added", "records.removed"):
                    ok = got is not None and got[f] == want[f]
                    agree = agree and ok
                    note(
                        f"baseline vs truth: {f}", ok, f"{community} {day}: baseline {got and got[f]}, truth {want[f]}"
                    )
                    if not ok and got is not None and got[f] == model[f]:
                        explained[f] = explained.get(f, 0) + 1
                o = ours.get(day) if have_ours else None
                if agree and o is not None:
                    compare_subcounts(checks, f"{community} {day}", b, o)
        # Snapshots, every day.
        snap_want = snapshot_truth(t_days)
        last = snap_want[-1][0]
        m = members.get(community)
        note(
            "truth: cumulative deltas == membership at year end (internal)",
            m is not None and [last["metadata_only"], last["with_files"]] == m,
            f"{community}: {last} vs {m}",
        )
        if have_ours:
            snaps = fetch(host, snap_pat, community, "snapshot_date")
            note("ours: one snapshot doc per day", len(snaps) == N_DAYS, f"{community}: {len(snaps)} docs")
            for i, day in enumerate(DAY_STRS):
                s = snaps.get(day)
                got = (s or {}).get("total_records")
                note(
                    "ours snapshot vs truth: total_records",
                    got == snap_want[i][0],
                    f"{community} {day}: ours {got}, truth {snap_want[i][0]}",
                )
                gotf = (s or {}).get("total_files")
                gotf = {k: int(round(v)) for k, v in gotf.items()} if isinstance(gotf, dict) else gotf
                note(
                    "ours snapshot vs truth: total_files",
                    gotf == snap_want[i][1],
                    f"{community} {day}: ours {gotf}, truth {snap_want[i][1]}",
                )
        if have_base:
            bs = fetch(host, f"{prefix}bench-baseline-records-snapshot-*", community, "snapshot_date")
            if bs:
                got = bs.get(DAY_STRS[-1], {}).get("total_records")
                note(
                    f"baseline snapshot {DAY_STRS[-1]} vs truth: total_records",
                    got == last,
                    f"{community}: baseline {got}, truth {last}",
                )

    if have_ours:
        compare_every_community(checks, host, delta_pat, snap_pat, all_comms, truth, members)
    return checks, explained


def compare_subcounts(checks, where, b, o):
    """The subcounts of the baseline's delta ``b`` and ours ``o`` (on a day where the
    reference's record sets are the intended ones): each baseline item (by id) must be ours
    with the same records added/removed; items only ours have are counted apart (ours counts
    subjects and affiliations without id by their text, the reference drops them)."""
    for key, *_ in SUBCOUNTS:
        bi = {i["id"]: i["records"] for i in b["subcounts"].get(key, [])}
        oi = {i["id"]: i["records"] for i in (o.get("subcounts") or {}).get(key, [])}
        bad = [k for k in bi if oi.get(k) != bi[k]]
        if (
            key == "affiliations"
            and bad
            and all(
                oi.get(k)
                and all(
                    bi[k][s][m] >= oi[k][s][m] for s in ("added", "removed") for m in ("metadata_only", "with_files")
                )
                for k in bad
            )
        ):
            # The reference counts contributions (an affiliation both among a
            # record's creators and its contributors counts twice), ours records.
            checks.note(
                "ours vs baseline: subcounts.affiliations, reference higher (expected)",
                False,
                f"{where}: " + "; ".join(f"{k}: ours {oi.get(k)} base {bi[k]}" for k in bad[:1]),
            )
            bad = []
        checks.note(
            f"ours vs baseline: subcounts.{key} per-id records",
            not bad,
            f"{where}: " + "; ".join(f"{k}: ours {oi.get(k)} base {bi[k]}" for k in bad[:2]),
        )
        extra = set(oi) - set(bi)
        if extra:
            checks.info(f"(info) ours-only subcount items: {key}", len(extra), f"{where}: {sorted(extra)[:3]}")


def compare_every_community(checks, host, delta_pat, snap_pat, all_comms, truth, members):
    """Every community: the year's sums of our deltas, and our last snapshot."""
    aggs = {
        f"{w}_{s}_{m}": {"sum": {"field": f"{w}.{s}.{m}"}}
        for w in ("records",)
        for s in ("added", "removed")
        for m in ("metadata_only", "with_files")
    }
    aggs.update(
        {
            f"files_{s}_{m}": {"sum": {"field": f"files.{s}.{m}"}}
            for s in ("added", "removed")
            for m in ("file_count", "data_volume")
        }
    )
    r = http(
        "POST",
        f"{host}/{delta_pat}/_search?allow_no_indices=true",
        {"size": 0, "aggs": {"c": {"terms": {"field": "community_id", "size": 10000}, "aggs": aggs}}},
    )
    buckets = {b["key"]: b for b in (r or {}).get("aggregations", {}).get("c", {}).get("buckets", [])}
    snaps = http(
        "POST",
        f"{host}/{snap_pat}/_search?allow_no_indices=true",
        {
            "size": 10000,
            "query": {"range": {"snapshot_date": {"gte": f"{DAY_STRS[-1]}T00:00:00"}}},
            "_source": ["community_id", "total_records"],
        },
    )
    last_snap = {
        h["_source"]["community_id"]: h["_source"].get("total_records")
        for h in (snaps or {}).get("hits", {}).get("hits", [])
    }
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
        checks.note(
            "ours vs truth, every community: year sums (records, files added/removed)",
            not diff,
            f"{community}: (ours, truth) {diff}",
        )
        m = members.get(community)
        checks.note(
            "ours vs truth, every community: last snapshot total_records",
            last_snap.get(community) == ({"metadata_only": m[0], "with_files": m[1]} if m else None),
            f"{community}: ours {last_snap.get(community)}, truth {m}",
        )


# ------------------------------------------------------------------ main
def main():
    a, host, version = shared.start(__doc__, "bench-aggrec-", baseline_worker)
    p = a.prefix
    log(f"node {host}: OpenSearch {version}; prefix {p}")

    gen = None
    if not a.regenerate and records_data.cached(host, p, a.records, a.communities):
        log(f"reusing the data under {p} ({a.records:,} records, {a.communities} communities; --regenerate to rebuild)")
        comms, records = records_data.build_model(a.records, a.communities)
    else:
        log(f"generating {a.records:,} records, {a.communities} communities and their community events ...")
        secs, comms, records = records_data.generate(host, p, a.records, a.communities, log=log)
        gen = {"seconds": secs}
        log(f"  done in {secs:.1f} s")
    n_events = records_data.expected_events(records)
    n_removed = sum(1 for r in records for _, rm in r["events"].values() if rm is not None)
    n_deleted = sum(1 for r in records if r["deleted_ts"] is not None)
    log(
        f"  {len(records):,} records ({sum(r['with_files'] for r in records):,} with files, {n_deleted} deleted, "
        f"{len({r['parent'] for r in records}):,} parents), {n_events:,} community events "
        f"({sum(len(r['events']) for r in records):,} added to communities, {n_removed} removed, "
        f"{len(records):,} global)"
    )
    all_comms = ["global", *comms]
    truth = truth_deltas(comms, records)
    ref = reference_deltas(comms, records)
    members = membership_at_end(comms, records)
    shared.warm_up(host, f"{p}rdmrecords-records,{p}stats-community-events", "parent.id")

    result = {
        "node": version,
        "prefix": p,
        "records": a.records,
        "communities": a.communities,
        "community_events": n_events,
        "days": N_DAYS,
        "generation": gen,
    }

    ours = None
    if not a.skip_ours:
        ours = shared.run_ours_step(result, lambda: run_ours(host, p, a.ours_arg), AGG_TYPES[0])
        if ours and "error" in ours:
            log(f"(a) ours FAILED (rc {ours['returncode']}) after {ours['seconds']:.1f} s:\n{ours['error']}")
            if "docs" not in ours:
                ours = None
        if ours:
            rep = ours.get("report")
            shared.log_ours(ours, aggregator_lines(rep) if isinstance(rep, dict) else ())

    base = ext = None
    subset = shared.baseline_subset(a, all_comms)
    if not a.skip_baseline:
        base, ext = shared.run_baseline(
            os.path.abspath(__file__), host, p, subset, all_comms, per_community_seconds=True
        )
        result["baseline"] = shared.baseline_result(base, ext, "other_requests")

    # ---- table
    title = (
        f"records aggregation (delta + snapshot, 'added' basis), {a.records:,} records, {n_events:,} community "
        f"events, {len(all_comms)} communities incl. global, {N_DAYS} days"
    )
    label = "(a) ours: community-stats aggregate"
    if shared.log_results(result, title, ours, label, ext, base, len(all_comms)) and ours and ours["searches"] is None:
        log("  (ours reported no `searches`: its column is empty; shard queries = node query_total delta)")

    # ---- correctness (also on the documents of earlier runs, e.g. with --skip-ours / --skip-baseline)
    have_ours = ours is not None or (a.skip_ours and count(host, ours_indices(p)[0]) > 0)
    have_base = base is not None or count(host, f"{p}bench-baseline-records-delta-*") > 0
    if have_ours or have_base:
        compared = [s["id"] for s in base["communities"]][:10] if base else subset[:10]
        checks, explained = compare(host, p, compared, all_comms, truth, ref, members, have_ours, have_base)
        result["checks"] = checks
        result["baseline_vs_truth_explained_by_reference_model"] = explained
        heading = (
            f"document checks: {len(compared)} communities x {N_DAYS} days ({', '.join(compared[:4])}"
            f"{', ...' if len(compared) > 4 else ''}), and every community's year sums and last snapshot "
            f"(truth = computed here from the generated records and events)"
        )
        shared.log_checks(heading, checks, 72)
        bt = {k: v for k, v in checks.items() if k.startswith("baseline vs truth") and v["mismatches"]}
        if bt:
            log(
                "  baseline vs truth mismatches are the reference's algorithm, not the baseline's code, where the "
                "baseline equals the reference model: "
                + ", ".join(
                    f"{k.split(': ')[1]} {explained.get(k.split(': ')[1], 0)} of {v['mismatches']}"
                    for k, v in bt.items()
                )
            )
            log(
                "    (its 'added' lookup has no event_type filter: a removal day counts the record as added too; a "
                "record removed from a community and later deleted is removed again on its deletion day)"
            )
    shared.print_result(a, result)


if __name__ == "__main__":
    main()
