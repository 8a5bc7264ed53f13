"""What bench/aggregate.py (usage) and bench/aggregate_records.py (records) share:

- the options, the node check, the progress log (stdout, or stderr with --json);
- our `community-stats aggregate` run and the baseline worker's run, measured: wall time,
  peak RSS of the process tree, the node's shard queries, optionally the node's heap and
  request-breaker trips (NodeWatch);
- the frame of a baseline worker (Worker: the reference's sequential loop in a subprocess:
  client, request counters, its delta and snapshot indices, bulk writes, the JSON report)
  and the reference's snapshot-pass searches;
- the linear extrapolation of the baseline's figures, the document checks' tally, the
  table and the ratios.
"""

import argparse
import contextlib
import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import aggregate_data as data  # noqa: E402
from common import add_search_host, count, delete, http, node_version, proc_status_kib  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
CLI = os.path.join(REPO, ".venv", "bin", "community-stats")
TOP_N = 20  # the reference's "top" subcounts keep this many items

LOG = sys.stdout


def log(*a):
    print(*a, file=LOG, flush=True)


def log_to_stderr():
    global LOG
    LOG = sys.stderr


def fmt(v, spec=",.0f"):
    return "—" if v is None else format(v, spec)


# ------------------------------------------------------------------ options and node
def arg_parser(doc, prefix, events=False, ours_options=None):
    """The options of both benches; ``events`` adds --events, ``ours_options(ap)`` adds more
    options for our command (after --ours-arg)."""
    ap = argparse.ArgumentParser(
        description=doc.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=doc.split("\n\n", 1)[1],
    )
    add_search_host(ap, "http://127.0.0.1:9280")
    ap.add_argument("--prefix", default=prefix, help=f"index prefix of the bench data (default {prefix})")
    if events:
        ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--records", type=int, default=10_000)
    ap.add_argument("--communities", type=int, default=100)
    ap.add_argument(
        "--baseline-communities",
        type=int,
        default=10,
        metavar="N",
        help="run the baseline on 'global' + N-1 communities and extrapolate (default 10)",
    )
    ap.add_argument("--full-baseline", action="store_true", help="run the baseline on every community")
    ap.add_argument("--regenerate", action="store_true", help="rebuild the data even if the prefix holds it")
    ap.add_argument("--skip-ours", action="store_true")
    ap.add_argument("--skip-baseline", action="store_true")
    ap.add_argument(
        "--ours-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for our aggregate command (repeatable)",
    )
    if ours_options:
        ours_options(ap)
    ap.add_argument("--json", action="store_true", help="print the figures as JSON (progress goes to stderr)")
    ap.add_argument("--_baseline-worker", dest="worker", help=argparse.SUPPRESS)
    return ap


def start(doc, prefix, worker, **options):
    """Parses the options (arg_parser). With --_baseline-worker runs ``worker(host, prefix,
    communities)`` and exits; else returns (the options, the host, the node's version), the
    progress going to stderr with --json."""
    a = arg_parser(doc, prefix, **options).parse_args()
    host = a.search_host.rstrip("/")
    if a.worker:
        worker(host, a.prefix, a.worker.split(","))
        raise SystemExit(0)
    if a.json:
        log_to_stderr()
    return a, host, checked_node_version(host)


def checked_node_version(host):
    """The node's version; exits with how to start one if there is none."""
    try:
        return node_version(host, timeout=10)
    except Exception as e:  # noqa: BLE001
        raise SystemExit(
            f"no node at {host} ({e}); start one: scripts/opensearch start --port 9280 --heap 2g "
            f"--data-dir /tmp/cs-bench-os"
        ) from e


def baseline_subset(a, comms):
    """The communities the baseline runs on: --baseline-communities of them, or all (--full-baseline)."""
    return comms if a.full_baseline else comms[: max(1, min(a.baseline_communities, len(comms)))]


# ------------------------------------------------------------------ measuring
def run_measured(cmd, env=None, timeout=None):
    """Runs ``cmd``; returns (seconds, peak RSS MiB of the process tree, rc, stdout, stderr).
    After ``timeout`` seconds the process (ours, started here) gets SIGTERM, then SIGKILL."""
    import psutil

    t = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak, stop = [0], threading.Event()

    def watch():
        try:
            proc = psutil.Process(p.pid)
        except psutil.Error:
            return
        while not stop.is_set():
            total = 0
            try:
                procs = [proc, *proc.children(recursive=True)]
            except psutil.Error:
                procs = []
            for q in procs:
                try:
                    total += q.memory_info().rss
                except psutil.Error:
                    pass
            # the main process's own high-water mark catches peaks between samples
            hwm = proc_status_kib(p.pid, "VmHWM")
            if hwm is not None:
                total = max(total, hwm * 1024)
            peak[0] = max(peak[0], total)
            stop.wait(0.1)

    w = threading.Thread(target=watch, daemon=True)
    w.start()
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.terminate()
        try:
            out, err = p.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
        err = (err or "") + f"\n[bench] stopped after the {timeout} s timeout"
    secs = time.perf_counter() - t
    stop.set()
    w.join()
    return secs, peak[0] / 2**20, p.returncode, out, err


def shard_queries(host):
    """Sum of the nodes' search query_total (shard-level query phases)."""
    r = http("GET", f"{host}/_nodes/stats/indices/search")
    return sum(n["indices"]["search"]["query_total"] for n in r["nodes"].values())


class NodeWatch:
    """Samples the node while a contender runs: peak heap %, request-breaker trips, and
    whether searches still answer (a node that ran out of heap can keep answering `GET /`
    while its search threads are gone)."""

    def __init__(self, host, every=5.0):
        self.host, self.every = host, every
        self.peak_heap, self.samples = 0, 0
        self._stop = threading.Event()
        self.trips0 = self._trips()

    def _stats(self):
        try:
            return http("GET", f"{self.host}/_nodes/stats/jvm,breaker", timeout=10)["nodes"].values()
        except Exception:  # noqa: BLE001
            return []

    def _trips(self):
        return sum(n["breakers"]["request"]["tripped"] for n in self._stats())

    def __enter__(self):
        def run():
            while not self._stop.wait(self.every):
                for n in self._stats():
                    self.peak_heap = max(self.peak_heap, n["jvm"]["mem"]["heap_used_percent"])
                    self.samples += 1

        self._t = threading.Thread(target=run, daemon=True)
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.trips = self._trips() - self.trips0

    def as_dict(self):
        return {"node_heap_peak_percent": self.peak_heap, "request_breaker_trips": self.trips}


def searches_answer(host):
    try:
        r = http("POST", f"{host}/_search?size=0&timeout=5s", {"query": {"match_all": {}}}, timeout=20)
        return "hits" in (r or {})
    except Exception:  # noqa: BLE001
        return False


def measured(host, cmd, env=None, timeout=None, watch=False):
    """Runs ``cmd`` measured; returns (figures, stdout, stderr). Figures: seconds,
    peak_rss_mib, returncode, shard_queries (the node's, meanwhile) and, with ``watch``,
    node_heap_peak_percent and request_breaker_trips."""
    before = shard_queries(host)
    node = NodeWatch(host) if watch else contextlib.nullcontext()
    with node:
        secs, rss, rc, out, err = run_measured(cmd, env=env, timeout=timeout)
    after = shard_queries(host)
    figures = {"seconds": secs, "peak_rss_mib": rss, "returncode": rc, "shard_queries": after - before}
    if watch:
        figures.update(node.as_dict())
    return figures, out, err


def node_figures(res, sep=", "):
    """The node figures of a watched run, as the progress lines show them ("" if not watched)."""
    if "node_heap_peak_percent" not in res:
        return ""
    return (
        f"{sep}node heap peak {res['node_heap_peak_percent']} %, request breaker trips {res['request_breaker_trips']}"
    )


# ------------------------------------------------------------------ (a) ours
def ours_available(agg_type=None):
    """(True, "") if our CLI offers `aggregate` (and ``agg_type``), else (False, why)."""
    if not os.path.exists(CLI):
        return False, f"{CLI} not found"
    r = subprocess.run([CLI, "aggregate", "--help"], capture_output=True, text=True)
    if r.returncode != 0:
        return False, (r.stderr or r.stdout).strip()[-300:]
    if agg_type and agg_type not in r.stdout:
        return False, f"{agg_type} not offered by `aggregate --help`"
    return True, ""


def run_ours_step(result, run, agg_type=None, unavailable="not available"):
    """(a): ``run()`` if our CLI is available (see ours_available), its figures (and report)
    put into ``result``; returns what ``run()`` returned (with "error" if it failed), or None
    if ours is not available."""
    available, why = ours_available(agg_type)
    if not available:
        log(f"(a) ours: {unavailable} ({why}); skipped")
        result["ours"] = {"error": f"not available: {why}"}
        return None
    log("(a) ours: running community-stats aggregate ...")
    ours = run()
    result["ours"] = {k: v for k, v in ours.items() if k != "report"}
    result["ours_report"] = ours.get("report")
    return ours


def aggregate_command(host, prefix, agg_types, *extra, end=data.END):
    """Our `aggregate` over the bench's days (to ``end``), without bookmarks, with its JSON report."""
    cmd = [CLI, "--search-host", host, "--index-prefix", prefix, "aggregate"]
    for t in agg_types:
        cmd += ["--aggregation-type", t]
    cmd += ["--start-date", data.START.isoformat(), "--end-date", end.isoformat(), "--ignore-bookmark", "--json"]
    return cmd + list(extra)


def shown(cmd):
    text = " ".join(cmd)
    return text if len(text) < 400 else text[:400] + " ..."


def parse_report(out):
    """Our JSON report (log lines before it tolerated); None if there is none."""
    try:
        return json.loads(out)
    except ValueError:
        start = out.find("{")
        if start >= 0:
            try:
                return json.loads(out[start:])
            except ValueError:
                pass
    return None


def our_outputs(host, refresh, delta_pat, snap_pat, report, err):
    """After our run: its searches (from ``report``), the documents it wrote (``refresh``
    refreshed first), the tail of its stderr."""
    res = {"searches": report.get("searches") if isinstance(report, dict) else None}
    http("POST", f"{host}/{refresh}/_refresh?allow_no_indices=true&ignore_unavailable=true")
    res["delta_docs"] = count(host, delta_pat)
    res["snapshot_docs"] = count(host, snap_pat)
    res["docs"] = res["delta_docs"] + res["snapshot_docs"]
    if err.strip():
        res["stderr_tail"] = err.strip()[-1500:]
    return res


def log_ours(ours, details=()):
    """The progress lines of a successful run of ours (``details``: lines after its report)."""
    log(
        f"    {ours['seconds']:.1f} s, {ours['docs']:,} docs, searches {ours['searches']}, "
        f"{ours['shard_queries']:,} shard queries, peak RSS {ours['peak_rss_mib']:.0f} MiB{node_figures(ours)}"
    )
    rep = ours.get("report")
    if isinstance(rep, dict):
        scalars = {k: v for k, v in rep.items() if not isinstance(v, (dict, list))}
        log(f"    our report: {json.dumps(scalars)[:600]}")
    for line in details:
        log(line)
    if ours.get("stderr_tail"):
        log(f"    our stderr (tail): {ours['stderr_tail'][-600:]}")


# ------------------------------------------------------------------ (b) baseline
def run_baseline(script, host, prefix, subset, all_comms, watch=False, per_community_seconds=False):
    """Runs ``script --_baseline-worker`` on ``subset`` measured; returns (its report with
    the figures, the extrapolation to ``all_comms``)."""
    log(
        f"(b) baseline: sequential per-day Python loop over {len(subset)} of {len(all_comms)} communities "
        f"({', '.join(subset[:4])}{', ...' if len(subset) > 4 else ''}) ..."
    )
    cmd = [sys.executable, script, "--search-host", host, "--prefix", prefix, "--_baseline-worker", ",".join(subset)]
    figures, out, err = measured(host, cmd, watch=watch)
    if figures["returncode"] != 0:
        raise SystemExit(f"baseline failed ({figures['returncode']}){node_figures(figures, '; ')}:\n{err[-3000:]}")
    rep = json.loads(out)
    if watch:
        rep.update({k: figures[k] for k in ("node_heap_peak_percent", "request_breaker_trips")})
    for s in rep["communities"]:
        if s.get("delta_errors") or s.get("snapshot_errors"):
            log(
                f"  baseline bulk errors for {s['id']}: {s.get('delta_errors')} delta, "
                f"{s.get('snapshot_errors')} snapshot; first: {s.get('first_error')}"
            )
    rep.update(
        wall_seconds=figures["seconds"], peak_rss_mib=figures["peak_rss_mib"], shard_queries=figures["shard_queries"]
    )
    log(
        f"    measured {rep['wall_seconds']:.1f} s, {rep['searches']:,} searches, {rep['shard_queries']:,} shard "
        f"queries, peak RSS {rep['peak_rss_mib']:.0f} MiB{node_figures(rep)}"
    )
    return rep, extrapolate(rep, all_comms, per_community_seconds)


def extrapolate(rep, all_communities, per_community_seconds=False):
    """Figures for all communities from the measured subset: the measured run plus the mean
    per-community cost of the non-global communities times the ones not run."""
    done = rep["communities"]
    others = [s for s in done if s["id"] != "global"]
    missing = len(all_communities) - len(done)
    docs = sum(s["delta_docs"] + s["snapshot_docs"] for s in done)
    if missing <= 0 or not others:
        return {
            "seconds": rep["wall_seconds"],
            "searches": rep["searches"],
            "docs": docs,
            "shard_queries": rep["shard_queries"],
            "extrapolated": False,
            "measured_communities": len(done),
        }
    n = len(others)
    per = lambda f: sum(f(s) for s in others) / n  # noqa: E731
    per_secs = per(lambda s: s["delta_seconds"] + s["snapshot_seconds"])
    # shard queries: scale the measured node delta by the searches ratio
    searches = rep["searches"] + per(lambda s: s["searches"]) * missing
    ext = {
        "seconds": rep["wall_seconds"] + per_secs * missing,
        "searches": round(searches),
        "docs": round(docs + per(lambda s: s["delta_docs"] + s["snapshot_docs"]) * missing),
        "shard_queries": round(rep["shard_queries"] * searches / max(1, rep["searches"])),
        "extrapolated": True,
        "measured_communities": len(done),
    }
    if per_community_seconds:
        ext["per_community_seconds"] = per_secs
    ext.update(measured_seconds=rep["wall_seconds"], measured_searches=rep["searches"], measured_docs=docs)
    return ext


class Worker:
    """The frame of a baseline worker, the reference's sequential loop run as a subprocess:
    the client, the request counters, the delta and snapshot indices
    `<prefix>bench-baseline-<name>-{delta,snapshot}-<year>` (created from
    ``index_body(kind)``), bulk writes (chunks of ``chunk``, grown by 10 % after each bulk
    without errors up to 100 if ``adaptive``), each pass's figures and the JSON report."""

    def __init__(self, host, prefix, name, index_body, chunk=50, adaptive=False):
        from opensearchpy import OpenSearch, helpers

        self.client, self.helpers = OpenSearch([host], timeout=300), helpers
        self.searches = 0  # search and count requests
        self.bulk_requests = 0
        self.other_requests = 0  # existence checks, deletes, refreshes
        self.delta_pat = f"{prefix}bench-baseline-{name}-delta"
        self.snap_pat = f"{prefix}bench-baseline-{name}-snapshot"
        delete(host, f"{self.delta_pat}-*")
        delete(host, f"{self.snap_pat}-*")
        self.days = list(data.days())
        for year in sorted({d.year for d in self.days}):
            for pat, kind in ((self.delta_pat, "delta"), (self.snap_pat, "snapshot")):
                self.client.indices.create(index=f"{pat}-{year}", body=index_body(kind))
        self.chunk, self.adaptive = chunk, adaptive
        self.t0 = time.perf_counter()

    def bulk(self, actions):
        ok, errors = self.helpers.bulk(self.client, actions, chunk_size=self.chunk, raise_on_error=False)
        self.bulk_requests += -(-ok // self.chunk)
        if self.adaptive and not errors:
            self.chunk = min(int(self.chunk * 1.1), 100)
        return ok, errors

    def done(self, stats, phase, t, s0, ok, errors, **more):
        """Records a community's pass (``phase``: delta or snapshot) started at ``t`` with
        ``s0`` searches done."""
        if errors:
            stats["first_error"] = json.dumps(errors[0])[:500]
        stats.update(
            {
                f"{phase}_seconds": time.perf_counter() - t,
                f"{phase}_docs": ok,
                f"{phase}_errors": len(errors),
                f"{phase}_searches": self.searches - s0,
                **more,
            }
        )

    def report(self, out):
        out.update(
            seconds=time.perf_counter() - self.t0,
            searches=self.searches,
            bulk_requests=self.bulk_requests,
            other_requests=self.other_requests,
        )
        print(json.dumps(out))

    def deltas(self, community, range_, size):
        """The community's delta documents in date order (``range_``: {"period_start": bounds}),
        read in pages of ``size`` (search_after)."""
        after = None
        while True:
            body = deltas_query(community, range_, size)
            if after:
                body["search_after"] = after
            hits = self.client.search(index=f"{self.delta_pat}-*", body=body)["hits"]["hits"]
            self.searches += 1
            for h in hits:
                yield h["_source"]
            if len(hits) < size:
                return
            after = hits[-1]["sort"]

    def dependency_check(self, community):
        """The snapshot pass's first 2 searches: the last delta's date, and the last snapshot
        before the first day (returns its hits)."""
        self.client.search(
            index=f"{self.delta_pat}-*",
            body={
                "size": 0,
                "query": {"term": {"community_id": community}},
                "aggs": {"max_date": {"max": {"field": "period_start"}}},
            },
        )
        prev = self.client.search(
            index=f"{self.snap_pat}-*",
            body={
                "size": 1,
                "sort": [{"snapshot_date": "desc"}],
                "query": of_community(community, {"snapshot_date": {"lt": f"{self.days[0]}T00:00:00"}}),
            },
        )
        self.searches += 2
        return prev["hits"]["hits"]


def index_action(index, _id, doc):
    """A bulk action: index ``doc`` as ``_id`` into ``index``."""
    return {"_op_type": "index", "_index": index, "_id": _id, "_source": doc}


def of_community(community, range_):
    """The query: the community's documents in the range (``range_``: {field: bounds})."""
    return {"bool": {"must": [{"term": {"community_id": community}}, {"range": range_}]}}


def deltas_query(community, range_, size):
    return {"size": size, "sort": [{"period_start": "asc"}], "query": of_community(community, range_)}


# ------------------------------------------------------------------ the checks and the report
class Checks(dict):
    """Per check: the number compared, the mismatches and a few examples."""

    def note(self, check, ok, example):
        c = self.setdefault(check, {"compared": 0, "mismatches": 0, "examples": []})
        c["compared"] += 1
        if not ok:
            c["mismatches"] += 1
            if len(c["examples"]) < 4:
                c["examples"].append(example)

    def info(self, check, n, example):
        """An information, not a check: ``n`` more items."""
        c = self.setdefault(check, {"compared": 0, "mismatches": 0, "examples": [], "info": True})
        c["compared"] += n
        if len(c["examples"]) < 3:
            c["examples"].append(example)


def log_checks(heading, checks, width):
    """The checks under ``heading`` (after an empty line), names ``width`` wide."""
    log("")
    log(heading)
    for name, c in checks.items():
        if c.get("info"):
            log(f"  {name:<{width}} {c['compared']:>6} items (expected: items without id)")
            for e in c["examples"][:2]:
                log(f"      e.g. {e}")
            continue
        status = "ok" if not c["mismatches"] else f"{c['mismatches']} MISMATCHES"
        log(f"  {name:<{width}} {c['compared']:>6} compared: {status}")
        for e in c["examples"][:3] if c["mismatches"] else []:
            log(f"      e.g. {e}")


def baseline_result(base, ext, *keys):
    """The baseline's part of the JSON result: the extrapolated figures, the measured peak
    RSS and bulk requests, ``keys`` of the measured report, the per-community figures."""
    res = {**ext, "peak_rss_mib": base["peak_rss_mib"], "bulk_requests": base["bulk_requests"]}
    res.update({k: base[k] for k in keys})
    res["per_community"] = base["communities"]
    return res


def table_row(label, figures, run):
    """A row of the table: ``figures`` (seconds, searches, shard queries, docs) and the peak
    RSS (and node figures, if watched) of the measured ``run``."""
    row = (label, figures["seconds"], figures["searches"], figures["shard_queries"], figures["docs"])
    row += (run["peak_rss_mib"],)
    if "node_heap_peak_percent" in run:
        row += (run["node_heap_peak_percent"], run["request_breaker_trips"])
    return row


def log_results(result, title, ours, ours_label, ext, base, n_comms):
    """The table of the runs under ``title`` with the extrapolation and the ratios (into
    ``result``); False if neither ran."""
    rows = [table_row(ours_label, ours, ours)] if ours else []
    if ext:
        label = "(b) baseline: per-day Python loop"
        if ext["extrapolated"]:
            label += f" [EXTRAPOLATED from {ext['measured_communities']} of {n_comms} communities]"
        rows.append(table_row(label, ext, base))
    if not rows:
        return False
    ratios = log_table(title, rows, ours, ext, n_comms)
    if ratios:
        result["ratios"] = ratios
    return True


def log_table(title, rows, ours, ext, n_comms):
    """The table (rows: run, wall s, searches, shard queries, docs, peak RSS[, node heap peak %,
    breaker trips]), the extrapolation and the ratios; returns the ratios (None without both runs)."""
    w = max(len(r[0]) for r in rows)
    node = len(rows[0]) > 6
    log("")
    log(title)
    head = f"{'run':<{w}} | {'wall s':>9} | {'searches':>9} | {'shard queries':>13} | {'docs written':>12}"
    rule = f"{'-' * w}-|-{'-' * 9}-|-{'-' * 9}-|-{'-' * 13}-|-{'-' * 12}-|-{'-' * 12}"
    log(head + f" | {'peak RSS MiB':>12}" + (f" | {'node heap peak':>14} | {'breaker trips':>13}" if node else ""))
    log(rule + (f"-|-{'-' * 14}-|-{'-' * 13}" if node else ""))
    for r in rows:
        line = f"{r[0]:<{w}} | {r[1]:>9.1f} | {fmt(r[2]):>9} | {fmt(r[3]):>13} | {fmt(r[4]):>12} | {r[5]:>12.0f}"
        log(line + (f" | {str(r[6]) + ' %':>14} | {r[7]:>13}" if node else ""))
    if ext and ext["extrapolated"]:
        each = f", {ext['per_community_seconds']:.1f} s each" if "per_community_seconds" in ext else ""
        log(
            f"  (b) measured on {ext['measured_communities']} communities: {ext['measured_seconds']:.1f} s, "
            f"{ext['measured_searches']:,} searches, {ext['measured_docs']:,} docs; extrapolated linearly "
            f"(mean of the non-global ones{each}) to {n_comms}"
        )
    if not (ours and ext):
        return None
    ratios = {
        "speedup": ext["seconds"] / ours["seconds"],
        "searches_ratio": (ext["searches"] / ours["searches"]) if ours["searches"] else None,
        "shard_queries_ratio": ext["shard_queries"] / ours["shard_queries"] if ours["shard_queries"] else None,
    }
    log(
        f"speed-up baseline / ours = {ratios['speedup']:.1f}x; searches baseline / ours = "
        f"{fmt(ratios['searches_ratio'], '.1f')}x; shard queries baseline / ours = "
        f"{fmt(ratios['shard_queries_ratio'], '.1f')}x"
    )
    return ratios


def print_result(a, result):
    """With --json: the figures as JSON on stdout."""
    if a.json:
        print(json.dumps(result, indent=1, default=str))


def warm_up(host, indices, field):
    """One search over ``indices`` (a cardinality of ``field``), so that whichever contender
    runs first is not penalised."""
    http("POST", f"{host}/{indices}/_search", {"size": 0, "aggs": {"c": {"cardinality": {"field": field}}}})


def search_sources(host, index, community, date_field, size):
    """The community's documents of ``index`` in ``date_field`` order."""
    body = {"size": size, "sort": [{date_field: "asc"}], "query": {"term": {"community_id": community}}}
    r = http("POST", f"{host}/{index}/_search?allow_no_indices=true&ignore_unavailable=true", body)
    return [h["_source"] for h in (r or {}).get("hits", {}).get("hits", [])]
