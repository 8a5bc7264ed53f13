"""The process manager with real background processes, signals and files (no cluster)."""

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time

import pytest

from invenio_community_stats import processes
from invenio_community_stats.errors import InvalidInputError, ProcessError

from conftest import wait_for
from helpers import base_env

PY = sys.executable


def cs(*args, env=None, timeout=120):
    return subprocess.run(
        [PY, "-m", "invenio_community_stats", *args],
        env=env or base_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def worker(code):
    """argv of a real worker process running ``code``."""
    return [PY, "-c", code]


def final_status(name, pid_dir, timeout=30):
    def done():
        s = processes.status(name, pid_dir)
        return s if s["state"] not in ("starting", "running", "cancelling") else None

    s = wait_for(done, timeout=timeout)
    assert s, processes.status(name, pid_dir)
    return s


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture
def pid_dir(tmp_path):
    d = tmp_path / "run"
    yield str(d)
    # Stop anything a failed test left running: only our own jobs, by their recorded PID.
    if d.exists():
        for job in processes.list_jobs(str(d)):
            try:
                processes.cancel(job["name"], str(d), timeout=1)
            except ProcessError:
                pass


def test_completed_job_records_exit_code_output_and_private_files(pid_dir):
    started = processes.start("test-ok", worker("print('hello from the worker')"), pid_dir=pid_dir)
    assert started["pid"] > 1
    s = final_status("test-ok", pid_dir)
    assert s["state"] == "completed" and s["status"] == "completed"
    assert s["exit_code"] == 0 and s["end_time"] >= s["start_time"]
    assert "hello from the worker" in processes.status("test-ok", pid_dir, log_lines=20)["log_tail"]
    assert stat.S_IMODE(os.stat(pid_dir).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(started["status_file"]).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(started["log_file"]).st_mode) == 0o640
    assert open(started["pid_file"]).read().strip() == str(started["pid"])


def test_failed_job_records_exit_code_and_error(pid_dir):
    """The worker records its own error; the supervisor keeps it (and reads nothing into
    the worker's output: a printed 'Error: ...' line is just output)."""
    processes.start(
        "test-fail",
        worker(
            "import sys; from invenio_community_stats import _core; _core.record_job_error('the cluster said no'); "
            "print('Error: not this'); sys.exit(3)"
        ),
        pid_dir=pid_dir,
    )
    s = final_status("test-fail", pid_dir)
    assert s["state"] == "failed" and s["exit_code"] == 3
    assert s["error"] == "the cluster said no"
    processes.start(
        "test-fail-quietly", worker("import sys; print('Error: printed only'); sys.exit(4)"), pid_dir=pid_dir
    )
    s = final_status("test-fail-quietly", pid_dir)
    assert s["state"] == "failed" and s["error"] == "exit code 4"


def test_sigkill_of_the_worker_is_recorded_as_killed(pid_dir):
    started = processes.start("test-kill", worker("import time; time.sleep(60)"), pid_dir=pid_dir)
    os.kill(started["pid"], signal.SIGKILL)
    s = final_status("test-kill", pid_dir)
    assert s["state"] == "killed" and s["signal"] == 9 and s["exit_code"] == 137


def test_job_whose_supervisor_and_worker_died_is_lost_never_running(pid_dir):
    started = processes.start("test-lost", worker("import time; time.sleep(60)"), pid_dir=pid_dir)
    os.kill(started["supervisor_pid"], signal.SIGKILL)
    # The worker still runs and still holds the lock: honestly running.
    time.sleep(0.3)
    assert processes.status("test-lost", pid_dir)["state"] == "running"
    os.kill(started["pid"], signal.SIGKILL)
    s = wait_for(
        lambda: processes.status("test-lost", pid_dir)["state"] == "lost" and processes.status("test-lost", pid_dir),
        timeout=10,
    )
    assert s and s["alive"] is False
    listed = processes.list_jobs(pid_dir, all=True)
    assert [j["state"] for j in listed] == ["lost"]
    assert processes.list_jobs(pid_dir) == []


def test_two_simultaneous_starts_exactly_one_runs(pid_dir):
    os.makedirs(pid_dir)
    results = []

    def start():
        results.append(cs("--search-host", "http://127.0.0.1:9", "load-sample-data-background", "--pid-dir", pid_dir))

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(r.returncode for r in results)
    assert codes == [0, 1, 1, 1], [(r.returncode, r.stderr) for r in results]
    running_pid = processes.status("sample-data-load", pid_dir)["pid"]
    for r in results:
        if r.returncode == 1:
            assert "already running" in r.stderr and str(running_pid) in r.stderr
            assert len(r.stderr.strip().splitlines()) == 1
    assert len(processes.list_jobs(pid_dir)) == 1
    processes.cancel("sample-data-load", pid_dir, timeout=10)


def test_graceful_and_forced_cancel(pid_dir):
    # A worker that checkpoints on SIGTERM (like our jobs) and one that ignores it.
    graceful = "import signal,sys,time\nsignal.signal(signal.SIGTERM, lambda *a: sys.exit(130))\ntime.sleep(60)"
    processes.start("test-graceful", worker(graceful), pid_dir=pid_dir)
    time.sleep(0.5)
    r = processes.cancel("test-graceful", pid_dir, timeout=10)
    assert r["outcome"] == "graceful" and r["state"] == "cancelled" and r["seconds"] < 2
    assert processes.status("test-graceful", pid_dir)["cancel_outcome"] == "graceful"

    stubborn = (
        "import signal,time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('ready', flush=True)\ntime.sleep(60)"
    )
    processes.start("test-stubborn", worker(stubborn), pid_dir=pid_dir)
    assert wait_for(lambda: "ready" in processes.status("test-stubborn", pid_dir, log_lines=5)["log_tail"], timeout=10)
    proc = cs("cancel-process", "test-stubborn", "--pid-dir", pid_dir, "--timeout", "1")
    assert proc.returncode == 0, proc.stderr
    assert "SIGKILL" in proc.stdout
    s = processes.status("test-stubborn", pid_dir)
    assert s["state"] == "killed" and s["cancel_outcome"] == "forced"


def test_cancel_of_a_finished_job_fails_and_changes_nothing(pid_dir):
    processes.start("test-done", worker("pass"), pid_dir=pid_dir)
    final_status("test-done", pid_dir)
    before = open(os.path.join(pid_dir, "invenio-community-stats-test-done.status")).read()
    proc = cs("cancel-process", "test-done", "--pid-dir", pid_dir)
    assert proc.returncode == 1 and "not running" in proc.stderr
    assert open(os.path.join(pid_dir, "invenio-community-stats-test-done.status")).read() == before


def test_reused_pid_is_never_signalled(pid_dir, tmp_path):
    processes.start("test-reuse", worker("pass"), pid_dir=pid_dir)
    final_status("test-reuse", pid_dir)
    # Make the status claim "running" with the PID of an unrelated live process.
    victim = subprocess.Popen(["sleep", "60"])
    try:
        path = os.path.join(pid_dir, "invenio-community-stats-test-reuse.status")
        doc = json.load(open(path))
        doc.update({"state": "running", "status": "running", "pid": victim.pid, "end_time": None, "exit_code": None})
        open(path, "w").write(json.dumps(doc))
        open(os.path.join(pid_dir, "invenio-community-stats-test-reuse.pid"), "w").write(str(victim.pid))
        s = processes.status("test-reuse", pid_dir)
        assert s["state"] == "lost"
        proc = cs("cancel-process", "test-reuse", "--pid-dir", pid_dir, "--timeout", "1")
        assert proc.returncode == 1
        time.sleep(0.2)
        assert victim.poll() is None, "an unrelated process was signalled"
        # Same with a lock held (a job that is really running) but a PID whose start time differs.
        started = processes.start("test-reuse2", worker("import time; time.sleep(60)"), pid_dir=pid_dir)
        path2 = os.path.join(pid_dir, "invenio-community-stats-test-reuse2.status")
        doc2 = json.load(open(path2))
        doc2["pid"] = victim.pid
        open(path2, "w").write(json.dumps(doc2))
        proc = cs("cancel-process", "test-reuse2", "--pid-dir", pid_dir, "--timeout", "1")
        assert proc.returncode == 1 and "not signalling" in proc.stderr
        assert victim.poll() is None
        os.kill(started["pid"], signal.SIGKILL)
    finally:
        victim.kill()
        victim.wait()


def test_foreign_pid_file_without_status_is_ignored_not_signalled(pid_dir):
    os.makedirs(pid_dir)
    victim = subprocess.Popen(["sleep", "60"])
    try:
        open(os.path.join(pid_dir, "invenio-community-stats-event-migration.pid"), "w").write(str(victim.pid))
        proc = cs("process-status", "event-migration", "--pid-dir", pid_dir)
        assert proc.returncode == 1 and "not a job this package started" in proc.stderr
        proc = cs("cancel-process", "event-migration", "--pid-dir", pid_dir)
        assert proc.returncode == 1
        assert victim.poll() is None
    finally:
        victim.kill()
        victim.wait()


@pytest.mark.parametrize("suffix", ["log", "lock", "pid"])
def test_symlink_planted_in_the_pid_dir_is_never_followed(pid_dir, tmp_path, suffix):
    os.makedirs(pid_dir)
    target = tmp_path / "precious"
    target.write_text("do not touch\n")
    os.symlink(target, os.path.join(pid_dir, f"invenio-community-stats-test-link.{suffix}"))
    try:
        processes.start("test-link", worker("print('x' * 100)"), pid_dir=pid_dir)
        final_status("test-link", pid_dir)
    except ProcessError as exc:
        assert "symbolic link" in str(exc)
    assert target.read_text() == "do not touch\n"


def test_symlinked_status_file_is_refused_not_followed(pid_dir, tmp_path):
    os.makedirs(pid_dir)
    target = tmp_path / "precious"
    target.write_text("do not touch\n")
    link = os.path.join(pid_dir, "invenio-community-stats-test-st.status")
    os.symlink(target, link)
    with pytest.raises(ProcessError, match="symbolic link"):
        processes.status("test-st", pid_dir)
    proc = cs("process-status", "test-st", "--pid-dir", pid_dir)
    assert proc.returncode == 1 and "symbolic link" in proc.stderr
    with pytest.raises(ProcessError, match="symbolic link"):
        processes.start("test-st", worker("pass"), pid_dir=pid_dir)
    assert target.read_text() == "do not touch\n"
    assert os.path.islink(link)


def test_log_is_capped_and_rotated(pid_dir):
    code = "import sys\nfor i in range(5000): print('line %05d ' % i + 'x' * 80)"
    processes.start("test-log", worker(code), pid_dir=pid_dir, log_max_bytes=64 * 1024, log_backups=2)
    final_status("test-log", pid_dir)
    base = os.path.join(pid_dir, "invenio-community-stats-test-log.log")
    sizes = [os.path.getsize(p) for p in (base, base + ".1", base + ".2")]
    assert all(s <= 64 * 1024 for s in sizes), sizes
    assert not os.path.exists(base + ".3")
    assert "supervisor:" in processes.status("test-log", pid_dir, log_lines=1)["log_tail"]


def test_bad_input_one_line_errors(pid_dir, tmp_path):
    os.makedirs(pid_dir)
    a_file = tmp_path / "file"
    a_file.write_text("")
    cases = [
        (["process-status", "../etc", "--pid-dir", pid_dir], 2, "invalid process name"),
        (["process-status", "Bad_Name", "--pid-dir", pid_dir], 2, "invalid process name"),
        (["process-status", "event-migration", "--pid-dir", str(tmp_path / "missing")], 1, "no job was started there"),
        (["process-status", "event-migration", "--pid-dir", str(a_file)], 2, None),
        (["process-status", "event-migration", "--pid-dir", pid_dir], 1, "no job named"),
        (
            ["process-status", "event-migration", "--pid-dir", pid_dir, "--log-lines", "0", "--show-log"],
            2,
            "--log-lines",
        ),
        (["cancel-process", "event-migration", "--pid-dir", pid_dir, "--timeout", "-1"], 2, "--timeout"),
        (["cancel-process", "event-migration", "--pid-dir", pid_dir], 1, "no job named"),
        (["load-sample-data-background", "--pid-dir", str(a_file)], 2, None),
    ]
    for args, code, text in cases:
        proc = cs(*args)
        assert proc.returncode == code, (args, proc.returncode, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1, (args, proc.stderr)
        if text:
            assert text in proc.stderr, (args, proc.stderr)
    status = os.path.join(pid_dir, "invenio-community-stats-event-migration.status")
    for content, text in [("", "empty"), ("{not json", "corrupt")]:
        open(status, "w").write(content)
        proc = cs("process-status", "event-migration", "--pid-dir", pid_dir)
        assert proc.returncode == 1 and text in proc.stderr, proc.stderr
        assert open(status).read() == content
    os.remove(status)
    open(os.path.join(pid_dir, "invenio-community-stats-event-migration.pid"), "w").write("garbage")
    proc = cs("process-status", "event-migration", "--pid-dir", pid_dir)
    assert proc.returncode == 1 and "does not hold a PID" in proc.stderr


def as_nobody(*args):
    """Runs the CLI as the unprivileged user 65534 (the tests run as root in CI)."""
    setpriv = subprocess.run(["which", "setpriv"], capture_output=True, text=True).stdout.strip()
    assert setpriv, "setpriv (util-linux) is needed for this test when running as root"
    return subprocess.run(
        [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", PY, "-m", "invenio_community_stats", *args],
        env=base_env(HOME="/tmp"),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_pid_dir_not_writable_is_refused():
    if os.geteuid() != 0:
        target = tempfile.mkdtemp()
        os.chmod(target, 0o500)
        proc = cs("load-sample-data-background", "--pid-dir", target)
    else:
        # As root every directory is writable: run as an unprivileged user, in a directory
        # of its own that it may not write.
        target = tempfile.mkdtemp(prefix="cs-nowrite-", dir="/tmp")
        os.chown(target, 65534, 65534)
        os.chmod(target, 0o500)
        proc = as_nobody("load-sample-data-background", "--pid-dir", target)
    try:
        assert proc.returncode == 2, proc.stderr
        assert "not writable" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
        assert os.listdir(target) == []
    finally:
        os.chmod(target, 0o700)
        shutil.rmtree(target, ignore_errors=True)


def test_a_pid_dir_others_could_tamper_with_is_refused(tmp_path):
    """A PID directory that is itself a symlink, owned by another user, or writable by
    others without the sticky bit is refused (one line, exit 2, nothing written); a
    symlinked parent and a root-owned sticky directory such as /tmp are fine."""
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(real)
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    os.chmod(open_dir, 0o777)
    cases = [(str(tmp_path / "link"), "symbolic link"), (str(open_dir), "sticky bit")]
    if os.geteuid() == 0:
        foreign = tmp_path / "foreign"
        foreign.mkdir(mode=0o700)
        os.chown(foreign, 65534, 65534)
        cases.append((str(foreign), "owned by another user"))
    for pid_dir, text in cases:
        for args in (["process-status", "event-migration"], ["load-sample-data-background"]):
            proc = cs(*args, "--pid-dir", pid_dir)
            assert proc.returncode == 2, (pid_dir, args, proc.stderr)
            assert text in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert os.listdir(pid_dir) == []
    # Fine: a directory under a symlinked parent; a sticky directory others may write.
    sticky = tmp_path / "sticky"
    sticky.mkdir()
    os.chmod(sticky, 0o1777)
    for pid_dir in (str(tmp_path / "link" / "run"), str(sticky)):
        started = processes.start("test-dir-ok", worker("print('ok')"), pid_dir=pid_dir)
        assert final_status("test-dir-ok", pid_dir)["state"] == "completed", started


@pytest.mark.parametrize(
    "twin, args, text",
    [
        ("aggregate-background", ["--start-date", "2026-13-45"], "--start-date"),
        ("aggregate-background", ["--start-date", "2025-06-10", "--end-date", "2025-06-01"], "before"),
        ("migrate-events-background", ["--months", "2024-13"], "YYYY-MM"),
        ("migrate-events-background", ["--event-types", "click"], "unknown event type"),
        ("generate-usage-events-background", ["--event-start-date", "0001-01-01"], "out of range"),
        ("generate-community-events-background", ["--end-date", "yesterday"], "not a date"),
        ("load-sample-data-background", ["--end-date", "2025-02-30"], "YYYY-MM-DD"),
    ],
)
def test_background_twins_check_every_option_before_starting(pid_dir, twin, args, text):
    """Exactly as the foreground command would: one line, exit 2, nothing started or written."""
    proc = cs("--search-host", "http://127.0.0.1:9", twin, *args, "--pid-dir", pid_dir)
    assert proc.returncode == 2, proc.stderr
    assert text in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not os.path.exists(pid_dir) or os.listdir(pid_dir) == []


def test_secrets_never_reach_status_log_or_output(pid_dir):
    proc = cs(
        "--search-host",
        "http://admin:TopSecret123@127.0.0.1:9",
        "load-sample-data-background",
        "--records",
        "3",
        "--pid-dir",
        pid_dir,
    )
    assert proc.returncode == 0, proc.stderr
    time.sleep(1.5)
    s = processes.status("sample-data-load", pid_dir)
    # Command lines are visible to every user (ps): neither process has the secret in its.
    cmdlines = [open(f"/proc/{pid}/cmdline", "rb").read().decode() for pid in (s["pid"], s["supervisor_pid"])]
    assert all("TopSecret123" not in c for c in cmdlines) and "load-sample-data" in cmdlines[0]
    processes.cancel("sample-data-load", pid_dir, timeout=10)
    texts = [proc.stdout, proc.stderr]
    for name in os.listdir(pid_dir):
        texts.append(open(os.path.join(pid_dir, name), errors="replace").read())
    texts.append(cs("process-status", "sample-data-load", "--pid-dir", pid_dir, "--show-log", "--json").stdout)
    assert all("TopSecret123" not in t for t in texts)
    # The log names the host it could not reach, without the credentials.
    assert "127.0.0.1:9" in processes.status("sample-data-load", pid_dir, log_lines=50)["log_tail"]


def test_list_follow_clean_and_grouped_spellings(pid_dir):
    processes.start("test-a", worker("import time; time.sleep(1.5); print('done')"), pid_dir=pid_dir)
    processes.start("test-b", worker("pass"), pid_dir=pid_dir)
    final_status("test-b", pid_dir)
    running = json.loads(cs("list-processes", "--pid-dir", pid_dir, "--json").stdout)
    assert [j["name"] for j in running] == ["test-a"]
    everything = json.loads(cs("processes", "list", "--all", "--pid-dir", pid_dir, "--json").stdout)
    assert {j["name"]: j["state"] for j in everything} == {"test-a": "running", "test-b": "completed"}
    followed = cs("process-status", "test-a", "--pid-dir", pid_dir, "--follow", "--interval", "0.2")
    assert followed.returncode == 0
    assert "State: running" in followed.stdout and followed.stdout.rstrip().split("State: ")[-1].startswith("completed")
    grouped = cs("processes", "status", "test-a", "--pid-dir", pid_dir, "--json")
    assert json.loads(grouped.stdout)["state"] == "completed"
    cleaned = json.loads(cs("processes", "clean", "--pid-dir", pid_dir, "--json").stdout)
    assert sorted(cleaned) == ["test-a", "test-b"]
    assert cs("list-processes", "--all", "--pid-dir", pid_dir, "--json").stdout.strip() == "[]"


def test_python_api_validates(pid_dir):
    with pytest.raises(InvalidInputError):
        processes.status("../x", pid_dir)
    with pytest.raises(InvalidInputError):
        processes.cancel("x", pid_dir, timeout=-1)


def test_a_cancel_issued_while_a_start_is_under_way_stops_the_new_run(pid_dir):
    """The new run is visible from the moment its start took the job's lock (before its
    supervisor runs): a cancel issued then waits for it and stops it, instead of reading
    the previous run's end and leaving the new one running."""
    processes.start("race", worker("import time; time.sleep(60)"), pid_dir=pid_dir)
    processes.cancel("race", pid_dir=pid_dir, timeout=10)
    assert processes.status("race", pid_dir)["state"] == "cancelled"
    for delay in (0.01, 0.03, 0.06):
        started = {}

        def start(into=started):
            into.update(processes.start("race", worker("import time; time.sleep(60)"), pid_dir=pid_dir))

        thread = threading.Thread(target=start)
        thread.start()
        time.sleep(delay)
        result = processes.cancel("race", pid_dir=pid_dir, timeout=10)
        thread.join(timeout=30)
        assert result["outcome"] in ("graceful", "forced") and result["pid"] == started["pid"], (delay, result, started)
        assert final_status("race", pid_dir)["state"] in ("cancelled", "killed")
