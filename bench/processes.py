"""Benchmark of the process manager (not a test): run with the package installed,
``python bench/processes.py``. Prints, in one run:

* ``process-status`` and ``list-processes --all`` over a PID directory with 1,000 jobs'
  status files (``BENCH_JOBS=200`` for another count): wall time per call, and the time
  added over a bare Python interpreter start;
  inside an instance, what ``invenio community-stats process-status`` adds over
  ``invenio --help``;
* cancel-to-exit latency of a job that checkpoints on SIGTERM (our jobs' behaviour);
* the supervisor's resident memory;
* the cost of one progress write into a status file, and its share of a job's time at the
  1-per-second rate.
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from invenio_community_stats import processes

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import proc_status_kib  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "15"))
JOBS = int(os.environ.get("BENCH_JOBS", "1000"))  # finished jobs' files in the PID directory
CLI = shutil.which("community-stats") or None


def timed(argv, runs=RUNS, env=None):
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        samples.append(time.perf_counter() - t)
        if proc.returncode != 0:
            raise SystemExit(f"{argv} failed: {proc.stderr.decode()}")
    return statistics.median(samples) * 1000, min(samples) * 1000


def make_status_files(pid_dir, n):
    """``n`` finished jobs, written with the real writer (one short real job), then copied."""
    processes.start("bench-seed", [sys.executable, "-c", "pass"], pid_dir=pid_dir)
    while processes.status("bench-seed", pid_dir)["alive"]:
        time.sleep(0.05)
    seed = json.load(open(os.path.join(pid_dir, "invenio-community-stats-bench-seed.status")))
    for i in range(n):
        name = f"bench-job-{i:04d}"
        doc = dict(seed, name=name)
        base = os.path.join(pid_dir, f"invenio-community-stats-{name}")
        with open(base + ".status", "w") as f:
            json.dump(doc, f)
        open(base + ".lock", "w").close()
        with open(base + ".pid", "w") as f:
            f.write(str(seed["pid"]))
        with open(base + ".log", "w") as f:
            f.write("line\n" * 100)


def main():
    work = tempfile.mkdtemp(prefix="cs-bench-proc-")
    pid_dir = os.path.join(work, "run")
    try:
        make_status_files(pid_dir, JOBS)
        entry = [CLI] if CLI else [sys.executable, "-m", "invenio_community_stats"]
        bare_med, bare_min = timed([sys.executable, "-c", "pass"])
        st_med, st_min = timed([*entry, "process-status", f"bench-job-{JOBS // 2:04d}", "--pid-dir", pid_dir])
        st_json_med, _ = timed(
            [*entry, "process-status", f"bench-job-{JOBS // 2:04d}", "--pid-dir", pid_dir, "--json", "--show-log"]
        )
        ls_med, ls_min = timed([*entry, "list-processes", "--all", "--pid-dir", pid_dir])
        lsj_med, _ = timed([*entry, "list-processes", "--all", "--pid-dir", pid_dir, "--json"])
        print(f"Status files in the PID directory: {JOBS} (median of {RUNS} runs, ms)")
        print(f"  bare python -c pass                 {bare_med:7.1f}")
        print(
            f"  process-status NAME                 {st_med:7.1f}   "
            f"added over bare start: {st_med - bare_med:6.1f} ms (target < 50)"
        )
        print(f"  process-status NAME --json --show-log {st_json_med:5.1f}   added: {st_json_med - bare_med:6.1f} ms")
        print(
            f"  list-processes --all ({JOBS:4d} rows)    {ls_med:7.1f}   "
            f"added over bare start: {ls_med - bare_med:6.1f} ms (target < 50)"
        )
        print(
            f"  list-processes --all --json ({JOBS:4d})  {lsj_med:7.1f}   "
            f"added over bare start: {lsj_med - bare_med:6.1f} ms"
        )

        # Inside an instance: what our group adds to `invenio ... process-status` over
        # `invenio --help` (the same app, extensions and entry points loaded).
        invenio = shutil.which("invenio")
        if invenio:
            env = {k: v for k, v in os.environ.items() if not k.startswith("INVENIO_")}
            env.pop("COMMUNITY_STATS_APP_MODE", None)
            env.update(INVENIO_INSTANCE_PATH=os.path.join(work, "instance"), INVENIO_SECRET_KEY="bench")
            os.makedirs(env["INVENIO_INSTANCE_PATH"], exist_ok=True)
            # `invenio --help` builds the app to list its commands; `invenio shell --help`
            # (another group's command) loads the same entry points without building it.
            help_med, _ = timed([invenio, "--help"], env=env)
            shell_med, _ = timed([invenio, "shell", "--help"], env=env)
            inv_med, _ = timed(
                [invenio, "community-stats", "process-status", f"bench-job-{JOBS // 2:04d}", "--pid-dir", pid_dir],
                env=env,
            )
            print(f"  invenio --help (invenio-app)        {help_med:7.1f}")
            print(f"  invenio shell --help                {shell_med:7.1f}")
            print(
                f"  invenio community-stats process-status NAME {inv_med:7.1f}   "
                f"added over invenio --help: {inv_med - help_med:6.1f} ms, "
                f"over invenio shell --help: {inv_med - shell_med:6.1f} ms (target < 50)"
            )
        else:
            print("  (no `invenio` command: invenio-app not installed, the in-instance figure is skipped)")

        # Cancel-to-exit latency and supervisor memory.
        graceful = (
            "import signal,sys,time\n"
            "signal.signal(signal.SIGTERM, lambda *a: sys.exit(130))\n"
            "print('ready', flush=True)\n"
            "time.sleep(600)\n"
        )
        latencies, rss = [], []
        for i in range(5):
            name = f"bench-cancel-{i}"
            started = processes.start(name, [sys.executable, "-c", graceful], pid_dir=pid_dir)
            while "ready" not in processes.status(name, pid_dir, log_lines=3)["log_tail"]:
                time.sleep(0.02)
            rss.append(proc_status_kib(started["supervisor_pid"], "VmRSS") or 0)
            result = processes.cancel(name, pid_dir, timeout=30)
            assert result["outcome"] == "graceful", result
            latencies.append(result["seconds"] * 1000)
        print(
            "Cancel to exit (SIGTERM -> final state recorded), 5 jobs: "
            f"median {statistics.median(latencies):.0f} ms, max {max(latencies):.0f} ms"
        )
        print(f"Supervisor resident memory: median {statistics.median(rss) / 1024:.1f} MiB")

        # Progress write cost: the real writer (Rust), many times; jobs write at most once a second.
        from invenio_community_stats import _core

        per_write = _core.measure_status_write(os.path.join(work, "writes"), 200)
        print(
            f"One progress write into the status file: {per_write * 1000:.2f} ms "
            f"= {per_write * 100:.2f} % of a job's time at one write per second (target < 1 %)"
        )
    finally:
        for job in processes.list_jobs(pid_dir):
            processes.cancel(job["name"], pid_dir, timeout=5)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
