"""Benchmark of the usage aggregation at scale (not a test): a year of many communities, and
how the cost grows when the communities or the days double. One run, side by side on the
same node, ratios printed:

    python bench/aggregate_scale.py --search-host http://127.0.0.1:9280 [--communities 100]
        [--days 365] [--events-per-day 2740] [--records 10000] [--baseline-communities 5]
        [--skip-baseline] [--regenerate] [--json]

Three data sets (bench/aggregate_data.py's shapes, each record in 1 community, 25 % in 2;
the same events per day, so doubling the days doubles the events):

    base        C communities,  D days   (default 100 x 365 = 1,000,100 events)
    2x comms    2C communities, D days   (the same events, spread over twice the communities)
    2x days     C communities,  2D days  (twice the events)

For each, in one run:

  (a) ours: community-stats aggregate --aggregation-type community-usage-delta-agg
      --aggregation-type community-usage-snapshot-agg --ignore-bookmark (every opted-in
      community and global): wall time, the usage delta's own time (from the report),
      searches issued, peak RSS, client CPU;
  (f) the floor: one scan of the same events in a point-in-time view (a scroll over views
      and downloads in `_doc` order, the same `_source` fields the usage delta reads, 10,000
      per page) by a client that does not parse the pages: every event read once, nothing
      computed or written;
  (w) the write floor: the node's own `_reindex` of our delta documents into a scratch
      index under the same template (each holds its subcount items as nested documents):
      what writing the output costs the node alone;
  (b) on the base data set only: the reference's per-day loop (bench/aggregate.py's
      baseline worker) on global + N-1 communities, extrapolated linearly to all.

Also checks our delta documents of global and two communities against the exact per-day
counts of the generated events.

Needs a node: scripts/opensearch start --port 9280 --heap 2g --data-dir /tmp/cs-bench-os
"""

import argparse
import json
import os
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import aggregate_common as shared  # noqa: E402
import aggregate_data as data  # noqa: E402
from aggregate_common import log, measured, search_sources  # noqa: E402
from common import CpuMeter, add_search_host, count, delete, http  # noqa: E402

AGG_TYPES = ("community-usage-delta-agg", "community-usage-snapshot-agg")
HERE = os.path.dirname(os.path.abspath(__file__))


def prefix_of(communities, days):
    return f"bench-scale-c{communities}-d{days}-"


def ensure_data(host, communities, days, events_per_day, records, regenerate):
    """The data set's prefix and truth (generated unless the prefix holds exactly it)."""
    p, n_events = prefix_of(communities, days), events_per_day * days
    truth = None if regenerate else data.cached(host, p, n_events, records, communities, n_days=days)
    if truth is None:
        log(f"generating {n_events:,} events over {days} days, {communities} communities under {p} ...")
        secs, n, truth = data.generate(host, p, n_events, records, communities, log=log, n_days=days)
        log(f"  {n:,} events in {secs:.1f} s")
        if n != n_events:
            raise SystemExit(f"expected {n_events} events, the indices hold {n}")
    return p, n_events, truth


# ------------------------------------------------------------------ (f) the floor
def raw_post(url, body, timeout=600):
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.read()


def scan(host, prefix, fields, page=10_000):
    """One scan of every view and download in a point-in-time view (a scroll in `_doc`
    order: OpenSearch has no `_shard_doc` to page a point in time in index order, and a
    sort on a field would add work the floor should not have): (seconds, events read,
    requests, client CPU seconds). The pages are not parsed: the hits are counted and the
    scroll id found in the bytes."""
    indices = data.event_indices(prefix)

    def scroll_id(raw):
        at = raw.index(b'"_scroll_id":"') + len(b'"_scroll_id":"')
        return raw[at : raw.index(b'"', at)].decode()

    with CpuMeter(host) as cpu:
        t0 = time.perf_counter()
        body = {"size": page, "sort": ["_doc"], "_source": fields}
        raw = raw_post(f"{host}/{indices}/_search?scroll=5m", body)
        read, requests = 0, 1
        while True:
            n = raw.count(b'"_id":"')
            read += n
            if n < page:
                break
            raw = raw_post(f"{host}/_search/scroll", {"scroll": "5m", "scroll_id": scroll_id(raw)})
            requests += 1
        http("DELETE", f"{host}/_search/scroll", {"scroll_id": scroll_id(raw)})
        secs = time.perf_counter() - t0
    return {"seconds": secs, "events_read": read, "requests": requests, "client_cpu": cpu.own, "node_cpu": cpu.node}


def write_floor(host, prefix):
    """The node's own cost of writing our delta documents: a `_reindex` of them into a
    scratch index under the same template (refreshed), then deleted: (seconds, documents)."""
    source, copy = f"{prefix}stats-community-usage-delta-2*", f"{prefix}stats-community-usage-delta-floorcopy"
    delete(host, copy)
    with CpuMeter(host) as cpu:
        t0 = time.perf_counter()
        r = http("POST", f"{host}/_reindex?refresh=true", {"source": {"index": source}, "dest": {"index": copy}})
        secs = time.perf_counter() - t0
    delete(host, copy)
    if r.get("failures") or "created" not in r:
        raise SystemExit(f"the write floor's _reindex failed: {str(r)[:600]}")
    return {"seconds": secs, "documents": r["created"], "node_cpu": cpu.node}


# ------------------------------------------------------------------ (a) ours
def run_ours(host, prefix, days):
    delete(host, f"{prefix}stats-community-usage-delta-*")
    delete(host, f"{prefix}stats-community-usage-snapshot-*")
    delete(host, f"{prefix}stats-community-aggregation-state*")
    cmd = shared.aggregate_command(host, prefix, AGG_TYPES, end=data.last_day(days))
    # Every day in one run (the catch-up limit defaults to a year).
    env = {**os.environ, "INVENIO_COMMUNITY_STATS_CATCHUP_DAYS": str(days)}
    with CpuMeter(host) as cpu:
        figures, out, err = measured(host, cmd, env=env)
    if figures["returncode"] != 0:
        raise SystemExit(f"ours failed ({figures['returncode']}):\n{(err or out)[-3000:]}")
    report = shared.parse_report(out)
    by_agg = {a["aggregator"]: a for a in report["aggregators"]}
    return {
        "command": shared.shown(cmd),
        "seconds": figures["seconds"],
        "delta_seconds": by_agg["community-usage-delta-agg"]["duration_seconds"],
        "snapshot_seconds": by_agg["community-usage-snapshot-agg"]["duration_seconds"],
        "searches": report["searches"],
        "documents": report["documents"],
        "errors": report["errors"],
        "peak_rss_mib": figures["peak_rss_mib"],
        "client_cpu": cpu.children,
        "node_cpu": cpu.node,
    }


def check_truth(host, prefix, truth, days, communities):
    """Mismatching (community, day, figure) of our deltas against the generated counts."""
    bad, checked = [], 0
    day_strs = [d.isoformat() for d in data.days(data.START, data.last_day(days))]
    for c in communities:
        docs = {
            str(d["period_start"])[:10]: d
            for d in search_sources(host, f"{prefix}stats-community-usage-delta-*", c, "period_start", days + 10)
        }
        t = truth[c]
        for i, day in enumerate(day_strs):
            doc = docs.get(day, {}).get("totals", {})
            got = (
                doc.get("view", {}).get("total_events"),
                doc.get("download", {}).get("total_events"),
                doc.get("download", {}).get("total_volume"),
            )
            checked += 1
            if got != (t[0][i], t[1][i], t[2][i]):
                bad.append(f"{c} {day}: ours {got}, truth {(t[0][i], t[1][i], t[2][i])}")
    return checked, bad


# ------------------------------------------------------------------ main
def main():
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    add_search_host(ap, "http://127.0.0.1:9280")
    ap.add_argument("--communities", type=int, default=100)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--events-per-day", type=int, default=2740)
    ap.add_argument("--records", type=int, default=10_000)
    ap.add_argument("--baseline-communities", type=int, default=5, metavar="N")
    ap.add_argument("--skip-baseline", action="store_true")
    ap.add_argument("--regenerate", action="store_true")
    ap.add_argument(
        "--cases",
        default="base,2x communities,2x days",
        help="which cases to run, comma-separated (default: all three; growth is printed against the first)",
    )
    ap.add_argument("--json", action="store_true", help="print the figures as JSON (progress goes to stderr)")
    a = ap.parse_args()
    if a.json:
        shared.log_to_stderr()
    host = a.search_host.rstrip("/")
    version = shared.checked_node_version(host)
    from invenio_community_stats import _core

    fields = _core.usage_event_fields()
    log(f"node {host}: OpenSearch {version}")
    cases = [
        ("base", a.communities, a.days),
        ("2x communities", 2 * a.communities, a.days),
        ("2x days", a.communities, 2 * a.days),
    ]
    chosen = [c.strip() for c in a.cases.split(",")]
    cases = [c for c in cases if c[0] in chosen]
    if not cases:
        raise SystemExit(f"--cases: none of {chosen} is base, 2x communities or 2x days")
    results = []
    for name, comms, days in cases:
        p, n_events, truth = ensure_data(host, comms, days, a.events_per_day, a.records, a.regenerate)
        http("POST", f"{host}/{data.event_indices(p)}/_forcemerge?max_num_segments=1")
        shared.warm_up(host, data.event_indices(p), "visitor_id")
        log(f"[{name}] {comms} communities x {days} days, {n_events:,} events")
        floor = scan(host, p, fields)
        if floor["events_read"] != count(host, data.event_indices(p)):
            raise SystemExit(f"the floor's scan read {floor['events_read']} events, not {n_events}")
        log(f"  (f) floor: {floor['seconds']:.1f} s, {floor['requests']} requests")
        ours = run_ours(host, p, days)
        log(
            f"  (a) ours: {ours['seconds']:.1f} s (delta {ours['delta_seconds']:.1f} s, snapshot "
            f"{ours['snapshot_seconds']:.1f} s), {ours['searches']:,} searches, {ours['documents']:,} documents, "
            f"peak RSS {ours['peak_rss_mib']:.0f} MiB, client CPU {ours['client_cpu']:.1f} s"
        )
        writes = write_floor(host, p)
        log(f"  (w) write floor: _reindex of our {writes['documents']:,} delta documents {writes['seconds']:.1f} s")
        checked, bad = check_truth(host, p, truth, days, ["global", *data.community_ids(comms)[:2]])
        log(
            f"  ours vs truth: {checked - len(bad)} of {checked} (community, day) match"
            + "".join(f"\n    {b}" for b in bad[:5])
        )
        res = {"case": name, "communities": comms, "days": days, "events": n_events, "ours": ours, "floor": floor}
        res["write_floor"] = writes
        res["truth_mismatches"] = len(bad)
        if name == "base" and not a.skip_baseline:
            all_comms = ["global", *data.community_ids(comms)]
            base, ext = shared.run_baseline(
                os.path.join(HERE, "aggregate.py"), host, p, all_comms[: a.baseline_communities], all_comms
            )
            res["baseline"] = ext
        results.append(res)

    # ---- table
    log("")
    log(f"usage aggregation at scale (delta + snapshot), {a.events_per_day:,} events per day, OpenSearch {version}")
    log(
        f"  {'case (communities x days)':<28}{'events':>11}{'ours s':>8}{'delta s':>8}{'read fl.':>9}{'write fl.':>10}"
        f"{'delta/read':>11}{'delta/(r+w)':>12}{'searches':>9}{'RSS MiB':>8}{'CPU s':>7}"
    )
    for r in results:
        o, f, w = r["ours"], r["floor"], r["write_floor"]
        label = f"{r['case']} ({r['communities']} x {r['days']})"
        log(
            f"  {label:<28}{r['events']:>11,}{o['seconds']:>8.1f}{o['delta_seconds']:>8.1f}{f['seconds']:>9.1f}"
            f"{w['seconds']:>10.1f}{o['delta_seconds'] / f['seconds']:>11.2f}"
            f"{o['delta_seconds'] / (f['seconds'] + w['seconds']):>12.2f}{o['searches']:>9,}"
            f"{o['peak_rss_mib']:>8.0f}{o['client_cpu']:>7.1f}"
        )
    log(
        "  (read fl. = one scan of the events; write fl. = the node's _reindex of our delta documents, "
        "i.e. the cost of writing them alone)"
    )
    base = results[0]
    for r in results[1:]:
        grow = {k: r["ours"][k] / max(base["ours"][k], 1e-9) for k in ("seconds", "delta_seconds", "searches")}
        log(
            f"  growth, {r['case']}: events x{r['events'] / base['events']:.2f}, wall x{grow['seconds']:.2f}, "
            f"delta x{grow['delta_seconds']:.2f}, searches x{grow['searches']:.2f}, "
            f"peak RSS x{r['ours']['peak_rss_mib'] / base['ours']['peak_rss_mib']:.2f}, "
            f"read floor x{r['floor']['seconds'] / base['floor']['seconds']:.2f}, "
            f"write floor x{r['write_floor']['seconds'] / base['write_floor']['seconds']:.2f}, "
            f"documents x{r['ours']['documents'] / max(base['ours']['documents'], 1):.2f}"
        )
    if "baseline" in base:
        b = base["baseline"]
        how = f"extrapolated from {b['measured_communities']}" if b["extrapolated"] else "measured"
        log(
            f"  (b) the reference's per-day loop on the base case ({how} communities): {b['seconds']:,.0f} s, "
            f"{b['searches']:,} searches; ours is {b['seconds'] / base['ours']['seconds']:.1f}x faster"
        )
    if a.json:
        print(json.dumps({"node": version, "events_per_day": a.events_per_day, "cases": results}, indent=2))
    return 1 if any(r["truth_mismatches"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
