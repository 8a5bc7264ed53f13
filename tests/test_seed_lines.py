"""Every command line of the design we were given (``../shared/seed/process-management.md``)
runs as it is written: the standalone ``community-stats`` script, against a prefix of the
test's own holding the communities and records the lines name, with its own PID directories
(the seed's ``/var/run/...`` directories mapped into the test's temporary directory).

The lines are read from the seed at test time when ``../shared`` is present, else from
``tests/data/seed_command_lines.json`` (recorded by ``scripts/record-seed-lines``)."""

import json
import time
from pathlib import Path

import pytest

import invenio_rdm as rdm
from conftest import run_cli
from helpers import load_script

HERE = Path(__file__).resolve().parent
SEED = HERE.parent.parent / "shared" / "seed" / "process-management.md"
RECORDED = HERE / "data" / "seed_command_lines.json"

# The job each start command runs, as the seed names it.
JOB_OF_START = {
    "aggregate-background": "aggregation",
    "migrate-events-background": "event-migration",
    "generate-community-events-background": "community-event-generation",
    "generate-usage-events-background": "usage-event-generation",
}
FINAL = ("completed", "failed", "cancelled", "killed", "lost")
# What the seed's lines name: these communities (slugs) and records exist in the fixture.
SLUGS = ("my-community-slug", "another-community", "my-community")
RECORD_IDS = ("abc123", "def456", "ghi789")


def _recorder():
    """``scripts/record-seed-lines`` as a module (one extraction, used by the script and here)."""
    return load_script("record-seed-lines")


def seed_lines():
    """The seed's lines: read from the seed when it is here, else the recorded ones."""
    if SEED.exists():
        return _recorder().command_lines(SEED.read_text())
    return json.loads(RECORDED.read_text())["lines"]


def test_the_recorded_lines_are_the_seeds():
    """The recorded copy (used on a plain clone) is what the recorder wrote: its content
    digest holds. Beside ../shared, it is also still the seed's (same source digest, same
    lines)."""
    recorded = json.loads(RECORDED.read_text())
    digests = load_script("recorded_data.py")
    assert digests.digest(recorded["lines"]) == recorded["content_sha256"], (
        "edited by hand: run scripts/record-seed-lines"
    )
    if SEED.exists():
        assert recorded["lines"] == _recorder().command_lines(SEED.read_text())
        assert recorded["source_sha256"] == digests.files_digest([SEED]), (
            "the seed changed: run scripts/record-seed-lines"
        )


def test_the_seed_has_the_lines_we_expect():
    """The extraction finds the seed's 47 lines, among them those the issue quotes."""
    lines = seed_lines()
    assert len(lines) == 47
    assert ["generate-community-events-background", "--record-ids", *RECORD_IDS] in lines
    assert ["processes", "status", "aggregation", "--show-log"] in lines


@pytest.fixture
def seed_instance(search, index_prefix):
    """An instance holding what the seed's lines name: three opted-in communities, the
    records ``abc123 def456 ghi789`` in them, and January 2024 usage events in the
    legacy monthly indices."""
    communities = [rdm.community(f"c{i}000000-0000-4000-8000-00000000000{i}", s, True) for i, s in enumerate(SLUGS)]
    records, actions = [], []
    for i, recid in enumerate(RECORD_IDS):
        owner = communities[i % len(communities)]["id"]
        records.append(rdm.record(recid, f"2023-12-0{i + 1}T10:00:00", communities=[owner], files=1))
    rdm.write(search, index_prefix, records, communities)
    for day in range(1, 29, 3):
        for recid in RECORD_IDS:
            ts = f"2024-01-{day:02d}T12:00:{day:02d}"
            _id, doc = rdm.event("view", ts, recid, f"p-{recid}", visitor=f"v{day}")
            actions.append((rdm.legacy_index(index_prefix, "view", ts), _id, doc))
            entry = rdm.file_entry(recid, 0)
            _id, doc = rdm.event(
                "download",
                ts,
                recid,
                f"p-{recid}",
                visitor=f"v{day}",
                bucket_id=f"b-{recid}",
                file_id=entry["file_id"],
                file_key=entry["key"],
                size=entry["size"],
            )
            actions.append((rdm.legacy_index(index_prefix, "download", ts), _id, doc))
    rdm.bulk(search, actions)
    return index_prefix


class Walk:
    """Runs the seed's lines in order and knows which jobs each PID directory has seen."""

    def __init__(self, env, tmp_path):
        self.env = env
        self.default_dir = tmp_path / "pids"
        self.dirs = {}
        self.started = set()
        self.tmp_path = tmp_path
        env["INVENIO_COMMUNITY_STATS_PID_DIR"] = str(self.default_dir)

    def local(self, args):
        """The line with each ``--pid-dir /var/run/NAME`` mapped to a directory of the test's."""
        out = list(args)
        for i, arg in enumerate(out[:-1]):
            if arg == "--pid-dir":
                out[i + 1] = str(
                    self.dirs.setdefault(out[i + 1], self.tmp_path / out[i + 1].strip("/").replace("/", "-"))
                )
        return out

    def pid_dir(self, args):
        return str(args[args.index("--pid-dir") + 1]) if "--pid-dir" in args else str(self.default_dir)

    def run(self, args):
        proc = run_cli(args, self.env, timeout=300)
        where = f"`{' '.join(args)}` -> exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        assert proc.returncode != 2 and "Usage:" not in proc.stderr, "usage error: " + where
        return proc, where

    def state(self, name, pid_dir):
        proc = run_cli(["process-status", name, "--json", "--pid-dir", pid_dir], self.env, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    def start(self, args):
        name, pid_dir = JOB_OF_START[args[0]], self.pid_dir(args)
        proc, where = self.run(args)
        assert proc.returncode == 0 and "Started" in proc.stdout, where
        self.started.add((pid_dir, name))
        # The seed's jobs are small here: each ends on its own; one still running after a
        # minute is cancelled (and the line fails, below).
        deadline = time.monotonic() + 60
        status = self.state(name, pid_dir)
        while status["state"] not in FINAL and time.monotonic() < deadline:
            time.sleep(0.2)
            status = self.state(name, pid_dir)
        if status["state"] not in FINAL:
            run_cli(["cancel-process", name, "--pid-dir", pid_dir], self.env, timeout=120)
        log = Path(pid_dir, f"invenio-community-stats-{name}.log")
        assert status["state"] == "completed", f"{where}\nstatus: {status}\nlog:\n{log.read_text()[-3000:]}"

    def watch(self, name, args):
        """``process-status``/``processes status``: the job's state, or a clear 'no job'."""
        proc, where = self.run(args)
        if (self.pid_dir(args), name) in self.started:
            assert proc.returncode == 0 and name in proc.stdout and "State: completed" in proc.stdout, where
        else:
            self.no_job(name, args, proc, where)

    def cancel(self, name, args):
        """``cancel-process``/``processes cancel`` of an ended job: says it is not running."""
        proc, where = self.run(args)
        if (self.pid_dir(args), name) in self.started:
            assert proc.returncode == 1 and f"{name} is not running (state: completed)" in proc.stderr, where
        else:
            self.no_job(name, args, proc, where)

    def no_job(self, name, args, proc, where):
        """A status or cancel of a job never started in that directory: a clear exit 1."""
        pid_dir = self.pid_dir(args)
        expected = f"no job named {name}" if Path(pid_dir).exists() else "does not exist: no job was started there"
        assert proc.returncode == 1 and expected in proc.stderr, where

    def line(self, args):
        args = self.local(args)
        if args[0] in JOB_OF_START:
            self.start(args)
        elif args[0] == "process-status" or args[:2] == ["processes", "status"]:
            self.watch(args[1] if args[0] == "process-status" else args[2], args)
        elif args[0] == "cancel-process" or args[:2] == ["processes", "cancel"]:
            self.cancel(args[1] if args[0] == "cancel-process" else args[2], args)
        elif args[0] == "list-processes":
            proc, where = self.run(args)
            # Every job started here has ended: none is running.
            assert proc.returncode == 0 and f"No running background jobs in {self.pid_dir(args)}" in proc.stdout, where
        else:
            raise AssertionError(f"a seed line this test does not know: {args}")

    def cancel_all(self):
        """Teardown: nothing this test started keeps running."""
        for pid_dir, name in self.started:
            run_cli(["cancel-process", name, "--pid-dir", pid_dir, "--timeout", "10"], self.env, timeout=60)


def test_every_seed_line_runs_as_written(seed_instance, cli_env, tmp_path, search):
    walk = Walk(dict(cli_env), tmp_path)
    try:
        for args in seed_lines():
            walk.line(args)
    finally:
        walk.cancel_all()
    # The lines did their work on the seed's data: the events were migrated, the records'
    # community events generated and the communities aggregated.
    prefix = seed_instance
    assert search.count(f"{prefix}events-stats-record-view-*") > 0
    assert search.count(f"{prefix}stats-community-events") >= len(RECORD_IDS)
    assert search.count(f"{prefix}stats-community-records-delta-added*") > 0


def test_the_seed_lines_need_no_path_outside_the_test(tmp_path):
    """The mapping keeps every PID directory under the test's own directory."""
    walk = Walk({}, tmp_path)
    for args in seed_lines():
        mapped = walk.local(args)
        if "--pid-dir" in mapped:
            assert Path(mapped[mapped.index("--pid-dir") + 1]).is_relative_to(tmp_path)
