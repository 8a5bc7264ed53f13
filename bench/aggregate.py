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

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import aggregate_common as shared  # noqa: E402
import aggregate_data as data  # noqa: E402
from aggregate_baseline import DOWNLOAD_METRICS, SUBCOUNTS, VIEW_METRICS, baseline_worker  # noqa: E402
from aggregate_common import Checks, log, measured, search_sources  # noqa: E402
from common import count, delete  # noqa: E402

AGG_TYPES = ("community-usage-delta-agg", "community-usage-snapshot-agg")


# ------------------------------------------------------------------ (a) ours
def core_build():
    """mtime and size of the installed Rust core (the lead rebuilds it while benches run)."""
    try:
        from invenio_community_stats import _core

        st = os.stat(_core.__file__)
        return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(st.st_mtime))}Z {st.st_size} bytes"
    except Exception as e:  # noqa: BLE001
        return f"unknown ({e})"


def run_ours(host, prefix, extra, env_pairs=(), community_ids=None, timeout=None):
    delta_pat, snap_pat = f"{prefix}stats-community-usage-delta-*", f"{prefix}stats-community-usage-snapshot-*"
    delete(host, delta_pat)
    delete(host, snap_pat)
    ids = ["--community-id", ",".join(community_ids)] if community_ids else []
    cmd = shared.aggregate_command(host, prefix, AGG_TYPES, *ids, *extra)
    env = dict(os.environ)
    for pair in env_pairs:
        k, _, v = pair.partition("=")
        env[k] = v
    figures, out, err = measured(host, cmd, env=env, timeout=timeout, watch=True)
    res = {"command": shared.shown(cmd), "env": list(env_pairs), **figures}
    if figures["returncode"] != 0:
        res["searches_still_answer"] = shared.searches_answer(host)
        res["error"] = (err or out).strip()[-2000:]
        return res
    res["report"] = report = shared.parse_report(out)
    res.update(shared.our_outputs(host, f"{prefix}stats-community-usage-*", delta_pat, snap_pat, report, err))
    return res


# ------------------------------------------------------------------ comparison
def fetch(host, index, community, date_field, size=400):
    return search_sources(host, index, community, date_field, size)


def g(doc, *path, default=None):
    cur = doc
    for p in path:
        if not isinstance(cur, dict) or p not in cur:
            return default
        cur = cur[p]
    return cur


def compare(host, prefix, communities, truth, have_ours):
    """Mismatch counts (and a few examples) per check, over every day of ``communities``."""
    checks = Checks()
    note = checks.note
    all_days = [d.isoformat() for d in data.days()]
    for community in communities:
        t = truth.get(community)
        base = {
            d["period_start"][:10]: d
            for d in fetch(host, f"{prefix}bench-baseline-usage-delta-*", community, "period_start")
        }
        ours = {}
        if have_ours:
            for d in fetch(host, f"{prefix}stats-community-usage-delta-*", community, "period_start"):
                ours[str(d.get("period_start", ""))[:10]] = d
            note("ours: one delta doc per day (365)", len(ours) == len(all_days), f"{community}: {len(ours)} docs")
        for i, day in enumerate(all_days):
            b, o = base.get(day), ours.get(day)
            exp = (
                {"view.total_events": t[0][i], "download.total_events": t[1][i], "download.total_volume": t[2][i]}
                if t
                else {}
            )
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
                        note(
                            f"ours vs baseline: subcounts.{key} per-id events",
                            False,
                            f"{community} {day}: ours has {type(oi_list).__name__} {str(oi_list)[:80]}",
                        )
                        continue
                    oi = {i.get("id"): i for i in oi_list}
                    same = set(bi) == set(oi) and all(
                        g(oi[k], kind, "total_events") == g(bi[k], kind, "total_events")
                        for k in bi
                        for kind in ("view", "download")
                    )
                    diff = ""
                    if not same:
                        only_b, only_o = sorted(set(bi) - set(oi))[:3], sorted(set(oi) - set(bi))[:3]
                        bad = [
                            k
                            for k in set(bi) & set(oi)
                            if any(
                                g(oi[k], kind, "total_events") != g(bi[k], kind, "total_events")
                                for kind in ("view", "download")
                            )
                        ][:2]
                        diff = f"{community} {day}: only baseline {only_b}, only ours {only_o}, differing " + "; ".join(
                            f"{k}: ours v{g(oi[k], 'view', 'total_events')}/d{g(oi[k], 'download', 'total_events')}"
                            f" base v{g(bi[k], 'view', 'total_events')}/d{g(bi[k], 'download', 'total_events')}"
                            for k in bad
                        )
                    note(f"ours vs baseline: subcounts.{key} per-id events", same, diff)
                    bl = {i["id"]: i.get("label") for i in bi.values()}
                    ol = {i.get("id"): i.get("label") for i in oi.values()}
                    lab_same = all(ol.get(k) == v for k, v in bl.items() if k in ol)
                    note(
                        f"ours vs baseline: subcounts.{key} labels",
                        lab_same,
                        f"{community} {day}: "
                        + "; ".join(f"{k}: ours {ol.get(k)!r} base {v!r}" for k, v in bl.items() if ol.get(k) != v)[
                            :200
                        ],
                    )
        # The last snapshot: cumulative totals.
        last = all_days[-1]
        bs = fetch(host, f"{prefix}bench-baseline-usage-snapshot-*", community, "snapshot_date")
        bs = bs[-1] if bs else None
        if t:
            want = {
                "view.total_events": sum(t[0]),
                "download.total_events": sum(t[1]),
                "download.total_volume": sum(t[2]),
            }
            for name, w in want.items():
                kind, m = name.split(".")
                if bs:
                    got = g(bs, "totals", kind, m)
                    note(
                        f"baseline snapshot {last} vs truth: {name}",
                        got == w,
                        f"{community}: baseline {got}, truth {w}",
                    )
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
                        note(
                            f"ours vs baseline snapshot {last}: {kind}.{m}",
                            x == y,
                            f"{community}: ours {x}, baseline {y}",
                        )
    return checks


# ------------------------------------------------------------------ main
def ours_options(ap):
    ap.add_argument(
        "--ours-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="environment for our command, e.g. INVENIO_COMMUNITY_STATS_AGGREGATION_CONCURRENCY=1",
    )
    ap.add_argument(
        "--ours-timeout",
        type=float,
        default=4 * 3600,
        metavar="SECONDS",
        help="stop our command after this long (default 4 h)",
    )
    ap.add_argument(
        "--scope",
        choices=("all", "communities", "global"),
        default="all",
        help="all: every opted-in community and global (default); communities: without global "
        "(ours gets --community-id with the list); global: global only",
    )


def main():
    a, host, version = shared.start(__doc__, "bench-agg-", baseline_worker, events=True, ours_options=ours_options)
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
    comms = {
        "all": ["global", *data.community_ids(a.communities)],
        "communities": data.community_ids(a.communities),
        "global": ["global"],
    }[a.scope]
    shared.warm_up(host, data.event_indices(p), "visitor_id")

    result = {
        "node": version,
        "prefix": p,
        "events": a.events,
        "records": a.records,
        "communities": a.communities,
        "scope": a.scope,
        "aggregated_communities": len(comms),
        "core_build": core_build(),
        "days": len(list(data.days())),
        "generation": gen,
    }

    ours = None
    if not a.skip_ours:
        ours = shared.run_ours_step(
            result,
            lambda: run_ours(host, p, a.ours_arg, a.ours_env, None if a.scope == "all" else comms, a.ours_timeout),
            unavailable="`community-stats aggregate` is not available yet",
        )
        if ours and "error" in ours:
            log(
                f"(a) ours FAILED (rc {ours['returncode']}) after {ours['seconds']:.1f} s; node heap peak "
                f"{ours['node_heap_peak_percent']} %, request breaker trips {ours['request_breaker_trips']}, "
                f"searches still answer: {ours['searches_still_answer']}:\n{ours['error'][-1500:]}"
            )
            ours = None
            if not result["ours"].get("searches_still_answer", True):
                log(
                    "the node no longer answers searches (out of heap?): restart it before anything else runs; "
                    "stopping here"
                )
                shared.print_result(a, result)
                return 2
        elif ours:
            shared.log_ours(ours)

    base = ext = None
    subset = shared.baseline_subset(a, comms)
    if not a.skip_baseline:
        base, ext = shared.run_baseline(os.path.abspath(__file__), host, p, subset, comms, watch=True)
        result["baseline"] = shared.baseline_result(base, ext, "node_heap_peak_percent", "request_breaker_trips")

    # ---- table
    what = {"all": "communities incl. global", "communities": "communities (without global)", "global": "(global only)"}
    title = (
        f"usage aggregation (delta + snapshot), {a.events:,} events, {len(comms)} {what[a.scope]}, "
        f"{result['days']} days"
    )
    label = "(a) ours: community-stats aggregate" + (f" [{' '.join(a.ours_env)}]" if a.ours_env else "")
    if shared.log_results(result, title, ours, label, ext, base, len(comms)) and ours and ours["searches"] is None:
        log(
            "  (ours reported no `searches`: its column is empty; shard queries = node query_total delta, "
            "i.e. per-shard query phases, 12 monthly indices per search over an alias)"
        )

    # ---- correctness (also on the documents of earlier runs, e.g. with --skip-ours / --skip-baseline)
    have_ours = ours is not None or (a.skip_ours and count(host, f"{p}stats-community-usage-delta-*") > 0)
    if base or count(host, f"{p}bench-baseline-usage-delta-*") > 0 or have_ours:
        compared = [s["id"] for s in base["communities"]][:10] if base else subset[:10]
        checks = compare(host, p, compared, truth, have_ours)
        result["checks"] = checks
        heading = (
            f"document checks over {len(compared)} communities x {result['days']} days "
            f"(truth = exact counts of the generated events, 00:00:00-23:59:59 inclusive):"
        )
        shared.log_checks(heading, checks, 58)
        if any(k.startswith("baseline vs truth") and v["mismatches"] for k, v in checks.items()):
            log(
                "  (baseline vs truth mismatches are expected: the reference's range is `lt 23:59:59`, so events at "
                "23:59:59 are lost)"
            )
    shared.print_result(a, result)


if __name__ == "__main__":
    sys.exit(main())
