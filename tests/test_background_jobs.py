"""Real jobs under the process manager against the real node: progress from the core,
cancel = checkpoint within one batch, and a re-run that finishes without duplicates."""

import errno
import json
import os
import shutil
import signal
import subprocess

import pytest

from invenio_community_stats import processes

from conftest import wait_for
from helpers import js
from records_fixture import record, write

C1 = "11111111-1111-4111-a111-111111111111"
FINAL = ("completed", "failed", "cancelled", "killed", "lost")


def test_usage_generation_in_background_reports_progress_cancels_fast_and_resumes(cli, search, index_prefix, tmp_path):
    pid_dir = str(tmp_path / "run")
    n_records, per_record = 2000, 40
    write(
        search,
        index_prefix,
        [record(f"r{i:05d}-00000", "2024-01-01T00:00:00Z", [C1], files=1) for i in range(n_records)],
        [{"id": C1, "slug": "one"}],
    )
    expected = n_records * per_record * 2
    args = ["--events-per-record", str(per_record), "--event-end-date", "2024-12-31", "--seed", "3"]
    proc = cli("generate-usage-events-background", *args, "--pid-dir", pid_dir, "--json")
    assert proc.returncode == 0, proc.stderr
    started = json.loads(proc.stdout)

    # Progress comes from the Rust loop through the status file.
    status = wait_for(
        lambda: (s := processes.status("usage-event-generation", pid_dir))["processed"] > 100 and s, timeout=60
    )
    assert status["total"] == n_records and status["state"] == "running"
    assert status["rate"] > 0 and status["current_task"]
    assert "--events-per-record 40" in status["command"]

    result = processes.cancel("usage-event-generation", pid_dir, timeout=30)
    assert result["outcome"] == "graceful", result
    print(f"cancel took {result['seconds']:.2f} s")
    assert result["seconds"] < 2.0, result
    final = processes.status("usage-event-generation", pid_dir, log_lines=50)
    assert final["state"] == "cancelled" and final["exit_code"] == 130
    assert "Cancelled:" in final["log_tail"]
    partial = search.count(f"{index_prefix}events-stats-*")
    assert 0 < partial < expected

    # The same command again finishes the job; nothing is written twice, nothing is lost.
    report = json.loads(cli("generate-usage-events", *args, "--json", timeout=600).stdout)
    assert report["written"] + report["already_present"] == expected
    assert report["already_present"] >= partial
    assert search.count(f"{index_prefix}events-stats-*") == expected
    assert started["pid"] == final["pid"]


def test_community_event_generation_background_completes(cli, search, index_prefix, tmp_path):
    pid_dir = str(tmp_path / "run")
    write(
        search,
        index_prefix,
        [record(f"s{i:05d}-00000", "2024-01-01T00:00:00Z", [C1]) for i in range(50)],
        [{"id": C1, "slug": "one"}],
    )
    proc = cli("generate-community-events-background", "--community-id", "one", "--pid-dir", pid_dir)
    assert proc.returncode == 0, proc.stderr
    assert "community-event-generation" in proc.stdout and "process-status" in proc.stdout
    final = wait_for(
        lambda: (s := processes.status("community-event-generation", pid_dir))["state"] == "completed" and s, timeout=60
    )
    assert final and final["exit_code"] == 0 and final["processed"] == 50 and final["progress"] == 100.0
    assert search.count(f"{index_prefix}stats-community-events") == 50
    assert os.path.exists(final["log_file"])
    # A failure is recorded as failed with the error, exit code 2 for bad input.
    proc = cli("generate-community-events-background", "--community-id", "nope", "--pid-dir", pid_dir)
    assert proc.returncode == 0
    failed = wait_for(
        lambda: (s := processes.status("community-event-generation", pid_dir))["state"] == "failed" and s, timeout=60
    )
    assert failed and failed["exit_code"] == 2 and "unknown community" in failed["error"]


def test_migration_in_background_cancel_checkpoints_and_resume_completes(cli, search, index_prefix, tmp_path):
    pid_dir = str(tmp_path / "run")
    cli(
        "load-sample-data",
        "--records",
        "300",
        "--events-per-record",
        "25",
        "--months",
        "3",
        "--end-date",
        "2025-06-30",
        check=True,
    )
    cli("generate-community-events", check=True)
    legacy = ",".join(
        f"{index_prefix}events-stats-{k}-2025-0{m}" for k in ("record-view", "file-download") for m in (4, 5, 6)
    )
    expected = sorted(h["_id"] for h in search.search_all(legacy))
    proc = cli("migrate-events-background", "--batch-size", "10", "--parallel-months", "2", "--pid-dir", pid_dir)
    assert proc.returncode == 0, proc.stderr
    status = wait_for(lambda: (s := processes.status("event-migration", pid_dir))["processed"] >= 100 and s, timeout=60)
    assert status and status["total"] == len(expected) and status["processed"] < len(expected) / 2
    result = processes.cancel("event-migration", pid_dir, timeout=30)
    assert result["outcome"] == "graceful" and result["state"] == "cancelled", result
    rows = json.loads(cli("migration-status", "--json").stdout)
    # The run stopped early: the months under way (one per lane of --parallel-months 2, or
    # fewer when a lane was between months) interrupted (checkpointed unless they had just
    # begun), the later ones untouched, the earlier ones done.
    states = [r["state"] for r in rows]
    assert 1 <= states.count("interrupted") <= 2 and set(states) <= {"done", "interrupted", "pending"}, rows
    assert any(s != "done" for s in states), rows
    # Nothing half-done is visible to readers: a month's new index is in the read alias only
    # once that month is done, and then instead of (never beside) the legacy one.
    for r in rows:
        assert r["read_alias"] == ("target" if r["state"] == "done" else "source"), r
    report = json.loads(cli("migrate-events", "--batch-size", "500", "--json").stdout)
    assert report["done"] == 6
    migrated = sorted(h["_id"] for h in search.search_all(f"{index_prefix}events-stats-*-v2.0.0"))
    assert migrated == expected


def test_a_job_whose_supervisor_is_killed_still_ends_completed_with_its_output_logged(
    cli, search, index_prefix, tmp_path
):
    """SIGKILL of the supervisor: the worker runs to its end, writes its own output into the
    log and records its own final state (completed, exit code 0), never `lost`."""
    pid_dir = str(tmp_path / "run")
    started = js(
        cli(
            "load-sample-data-background",
            "--records",
            "3000",
            "--events-per-record",
            "5",
            "--months",
            "2",
            "--end-date",
            "2025-06-30",
            "--pid-dir",
            pid_dir,
            "--json",
        )
    )
    assert wait_for(lambda: processes.status("sample-data-load", pid_dir)["processed"] > 0, timeout=60)
    os.kill(started["supervisor_pid"], signal.SIGKILL)
    final = wait_for(
        lambda: (s := processes.status("sample-data-load", pid_dir))["state"] in ("completed", "failed", "lost") and s,
        timeout=180,
    )
    assert final["state"] == "completed" and final["exit_code"] == 0, final
    log = open(final["log_file"]).read()
    assert "Loaded 5 communities, 3000 records" in log, log[-2000:]
    assert search.count(f"{index_prefix}rdmrecords-records") == 3000


def _mount_small_tmpfs(path, size="1m"):
    """Mounts a small tmpfs at ``path`` (root only); False when this machine does not allow it."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    path.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)])
    return proc.returncode == 0


def _fill(path):
    """Writes ``path`` until the file system says it is full."""
    with open(path, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError as e:
            assert e.errno == errno.ENOSPC, e


def test_a_disk_that_fills_up_mid_run_ends_completed_not_lost(cli, search, index_prefix, tmp_path):
    """A full disk under the PID directory while a real job runs: its status still records
    the progress and the end (completed, exit code 0), never `lost`, and its work is whole."""
    pid_dir = tmp_path / "small"
    if not _mount_small_tmpfs(pid_dir):
        pytest.skip("cannot mount a tmpfs on this machine (needs root)")
    try:
        js(
            cli(
                "load-sample-data-background",
                "--records",
                "600",
                "--events-per-record",
                "5",
                "--months",
                "2",
                "--end-date",
                "2025-06-30",
                "--pid-dir",
                str(pid_dir),
                "--json",
            )
        )
        assert wait_for(lambda: processes.status("sample-data-load", str(pid_dir))["state"] == "running", timeout=60)
        _fill(pid_dir / "filler")
        final = wait_for(
            lambda: (s := processes.status("sample-data-load", str(pid_dir)))["state"] in FINAL and s, timeout=180
        )
        assert final["state"] == "completed" and final["exit_code"] == 0, final
        assert final["processed"] == final["total"] == 600
        assert search.count(f"{index_prefix}rdmrecords-records") == 600
        shown = cli("process-status", "sample-data-load", "--pid-dir", str(pid_dir))
        assert "State: completed" in shown.stdout, shown.stdout
    finally:
        status = processes.status("sample-data-load", str(pid_dir))
        if status["alive"]:
            processes.cancel("sample-data-load", str(pid_dir), timeout=10)
        subprocess.run(["umount", "-l", str(pid_dir)])


def test_log_lines_lost_to_a_full_disk_are_reported(tmp_path):
    """A job whose output no longer fits in the log: it still ends `completed`, and its
    status says how many log lines could not be written and why."""
    import sys

    pid_dir = tmp_path / "small"
    if not _mount_small_tmpfs(pid_dir, size="256k"):
        pytest.skip("cannot mount a tmpfs on this machine (needs root)")
    go = tmp_path / "go"
    code = (
        "import os, sys, time\n"
        "print('started', flush=True)\n"
        f"while not os.path.exists({str(go)!r}): time.sleep(0.02)\n"
        "for i in range(200): print('line %03d ' % i + 'x' * 200, flush=True)\n"
    )
    try:
        processes.start("full-log", [sys.executable, "-c", code], pid_dir=str(pid_dir))
        assert wait_for(lambda: "started" in processes.status("full-log", str(pid_dir), log_lines=5)["log_tail"])
        _fill(pid_dir / "filler")
        go.touch()
        final = wait_for(lambda: (s := processes.status("full-log", str(pid_dir)))["state"] in FINAL and s)
        assert final["state"] == "completed" and final["exit_code"] == 0, final
        assert "log line(s) could not be written" in final["warning"] and "No space left" in final["warning"], final
    finally:
        status = processes.status("full-log", str(pid_dir))
        if status["alive"]:
            processes.cancel("full-log", str(pid_dir), timeout=10)
        subprocess.run(["umount", "-l", str(pid_dir)])
