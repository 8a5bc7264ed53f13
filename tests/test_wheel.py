"""The wheel PyPI accepts (``scripts/build-wheel``): tagged manylinux for glibc 2.28 or older
(file name and ``auditwheel show``), with the licence and project URLs in its metadata; and,
installed with invenio-app in a fresh virtualenv where no Rust toolchain is on PATH, a clean
``pip check``, the ``invenio community-stats`` group against the test node (a background
job included) and the standalone ``community-stats`` script.

The wheel is the one in ``dist/``; when there is none, ``scripts/build-wheel`` makes it
(a release build with zig: minutes on a cold target directory). One virtualenv serves every
test of this module."""

import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DIST = REPO / "dist"
BUILD_WHEEL = REPO / "scripts" / "build-wheel"
PACKAGES_SITE = REPO / ".cache" / "invenio-packages" / "site"
URL = "https://github.com/invenio-community-stats/invenio-community-stats"
MAX_GLIBC = (2, 28)
FINAL = ("completed", "failed", "cancelled", "killed", "lost")
# Aliases of PEP 600 tags (PEP 513, 571, 599).
LEGACY_MANYLINUX = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
PIP_ENV = {"PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}


def _this_venv_env():
    """The environment for scripts/build-wheel: this interpreter's virtualenv."""
    env = dict(os.environ)
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    if sys.prefix != sys.base_prefix:
        env["VIRTUAL_ENV"] = sys.prefix
    return env


def _wheels():
    return sorted(DIST.glob("invenio_community_stats-*.whl"), key=lambda p: p.stat().st_mtime)


def _glibc(platform_tag):
    """(major, minor) of a manylinux platform tag, or None for any other tag."""
    m = re.fullmatch(r"manylinux_(\d+)_(\d+)_x86_64", platform_tag)
    if m:
        return int(m.group(1)), int(m.group(2))
    m = re.fullmatch(r"(manylinux\w+?)_x86_64", platform_tag)
    return LEGACY_MANYLINUX.get(m.group(1)) if m else None


@pytest.fixture(scope="module")
def wheel():
    """The wheel in dist/ (the newest); built by scripts/build-wheel when there is none."""
    auditwheel = Path(sys.executable).parent / "auditwheel"
    if not _wheels() or not auditwheel.exists():
        proc = subprocess.run(
            [str(BUILD_WHEEL)], env=_this_venv_env(), cwd=REPO, capture_output=True, text=True, timeout=1800
        )
        assert proc.returncode == 0, f"scripts/build-wheel failed:\n{proc.stdout}\n{proc.stderr[-6000:]}"
    wheels = _wheels()
    assert wheels, "scripts/build-wheel left no wheel in dist/"
    return wheels[-1]


def _contents(wheel_path):
    """(dist-info directory, member names, METADATA text, LICENSE text or None) of a wheel."""
    with zipfile.ZipFile(wheel_path) as zf:
        names = set(zf.namelist())
        dist_info = next(n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info"))
        licence = f"{dist_info}/licenses/LICENSE"
        return (
            dist_info,
            names,
            zf.read(f"{dist_info}/METADATA").decode(),
            zf.read(licence).decode() if licence in names else None,
        )


def test_the_wheel_is_abi3_manylinux_for_glibc_2_28_or_older(wheel):
    # name-version-python-abi-platform.whl; the platform part may hold several tags.
    name, version, python_tag, abi_tag, platforms = wheel.name[: -len(".whl")].split("-")
    assert (name, python_tag, abi_tag) == ("invenio_community_stats", "cp39", "abi3"), wheel.name
    declared = re.search(r'^version = "([^"]+)"', (REPO / "Cargo.toml").read_text(), re.M).group(1)
    assert version == declared, f"{wheel.name} is not version {declared}: run scripts/build-wheel"
    tags = platforms.split(".")
    glibcs = [_glibc(t) for t in tags]
    assert all(glibcs), f"not manylinux: {wheel.name}"
    assert max(glibcs) <= MAX_GLIBC, wheel.name

    proc = subprocess.run(
        [str(Path(sys.executable).parent / "auditwheel"), "show", str(wheel)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stdout.split())
    verdict = re.search(r'consistent with the following platform tag: "([^"]+)"', text)
    assert verdict, proc.stdout
    assert _glibc(verdict.group(1)) and _glibc(verdict.group(1)) <= MAX_GLIBC, proc.stdout
    # The symbol versions auditwheel found, independently of its verdict.
    needed = [tuple(int(x) for x in v.split(".")[:2]) for v in re.findall(r"GLIBC_(\d+\.\d+(?:\.\d+)?)", text)]
    assert needed and max(needed) <= MAX_GLIBC, proc.stdout


def test_the_wheel_carries_the_licence_classifiers_and_urls(wheel):
    dist_info, names, metadata, licence = _contents(wheel)
    assert licence == (REPO / "LICENSE").read_text(), f"{dist_info}/licenses/LICENSE"
    assert "invenio_community_stats/_core.pyi" in names and "invenio_community_stats/py.typed" in names
    assert "invenio_community_stats/_core.abi3.so" in names, sorted(names)
    headers = metadata.split("\n\n", 1)[0].splitlines()
    assert "License-Expression: MIT" in headers and "License-File: LICENSE" in headers, headers
    assert "Copyright (c) 2026 The invenio-community-stats developers" in (REPO / "LICENSE").read_text()
    for label, url in (("Homepage", URL), ("Repository", URL), ("Issues", f"{URL}/issues")):
        assert f"Project-URL: {label}, {url}" in headers, headers
    classifiers = {h.split(": ", 1)[1] for h in headers if h.startswith("Classifier: ")}
    expected = {f"Programming Language :: Python :: 3.{minor}" for minor in range(9, 14)} | {
        "Operating System :: POSIX :: Linux",
        "License :: OSI Approved :: MIT License",
        "Framework :: Flask",
        "Programming Language :: Rust",
    }
    assert expected <= classifiers, expected - classifiers
    assert "Requires-Python: >=3.9" in headers


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory):
    """A fresh virtualenv (current pip) with the wheel and invenio-app>=2 installed from PyPI
    (pip's cache allowed)."""
    root = tmp_path_factory.mktemp("wheel-venv") / "venv"
    env = {**_this_venv_env(), **PIP_ENV}
    env.pop("VIRTUAL_ENV", None)
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", "--upgrade-deps", str(root)], env=env, check=True, timeout=600)
    proc = subprocess.run(
        [str(root / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel), "invenio-app>=2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    print(f"wheel virtualenv made in {time.monotonic() - started:.1f} s")
    return root


def _clean_env(**extra):
    """No Rust toolchain, no source tree and no outer virtualenv in sight."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("INVENIO_", "CARGO", "RUSTUP", "PYTHON", "COMMUNITY_STATS_APP", "VIRTUAL_ENV"))
    }
    env.update(PIP_ENV)
    env.update(extra)
    return env


def test_pip_check_is_clean_and_pip_show_lists_licence_and_urls(venv, tmp_path):
    py = str(venv / "bin" / "python")
    env = _clean_env(PATH=f"{venv / 'bin'}:/usr/bin:/bin")
    check = subprocess.run([py, "-m", "pip", "check"], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "No broken requirements found" in check.stdout, check.stdout

    show = subprocess.run(
        [py, "-m", "pip", "show", "-v", "-f", "invenio-community-stats"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert show.returncode == 0, show.stderr
    lines = [line.strip() for line in show.stdout.splitlines()]
    assert "License-Expression: MIT" in lines, show.stdout
    assert f"Home-page: {URL}" in lines, show.stdout
    for label, url in (("Homepage", URL), ("Repository", URL), ("Issues", f"{URL}/issues")):
        assert f"{label}, {url}" in lines, show.stdout
    assert any(line.endswith(".dist-info/licenses/LICENSE") for line in lines), show.stdout
    location = next(line.split(": ", 1)[1] for line in lines if line.startswith("Location: "))
    assert Path(location).resolve().is_relative_to(venv.resolve()), location
    assert not any(line.startswith("Editable project location") for line in lines), show.stdout


def _run(venv, args, env, cwd, timeout=180):
    proc = subprocess.run(
        [str(venv / "bin" / args[0]), *args[1:]], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, f"{args} exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc


def test_the_installed_wheel_runs_its_commands_without_a_rust_toolchain(
    venv, search_url, search, index_prefix, tmp_path
):
    path = f"{venv / 'bin'}:/usr/bin:/bin"
    for tool in ("cargo", "rustc", "maturin"):
        assert shutil.which(tool, path=path) is None, f"{tool} is on the test's PATH"
    instance = tmp_path / "instance"
    instance.mkdir()
    pids = tmp_path / "pids"
    env = _clean_env(
        PATH=path,
        INVENIO_SEARCH_HOSTS=repr([search_url]),
        INVENIO_SEARCH_INDEX_PREFIX=index_prefix,
        INVENIO_INSTANCE_PATH=str(instance),
        INVENIO_SECRET_KEY="x",
        INVENIO_COMMUNITY_STATS_INVENIO_PACKAGES_DIR=str(PACKAGES_SITE),
    )

    # The extension imported is the wheel's, not the checkout's.
    where = _run(venv, ["python", "-c", "import invenio_community_stats._core as c; print(c.__file__)"], env, tmp_path)
    assert Path(where.stdout.strip()).resolve().is_relative_to(venv.resolve()), where.stdout

    info = json.loads(_run(venv, ["invenio", "community-stats", "info", "--json"], env, tmp_path).stdout)
    assert info["index_prefix"] == index_prefix and info["version"].startswith("2."), info

    started = _run(
        venv,
        [
            "invenio",
            "community-stats",
            "load-sample-data-background",
            "--records",
            "20",
            "--events-per-record",
            "1",
            "--pid-dir",
            str(pids),
            "--json",
        ],
        env,
        tmp_path,
    )
    assert json.loads(started.stdout)["pid"], started.stdout

    status_cmd = ["invenio", "community-stats", "process-status", "sample-data-load", "--pid-dir", str(pids), "--json"]
    deadline = time.monotonic() + 180
    status = json.loads(_run(venv, status_cmd, env, tmp_path).stdout)
    while status["state"] not in FINAL and time.monotonic() < deadline:
        time.sleep(0.5)
        status = json.loads(_run(venv, status_cmd, env, tmp_path).stdout)
    assert status["state"] == "completed" and status["exit_code"] == 0, status
    assert search.count(f"{index_prefix}rdmrecords-records") == 20

    standalone = _run(venv, ["community-stats", "--help"], env, tmp_path)
    assert "load-sample-data" in standalone.stdout and "process-status" in standalone.stdout, standalone.stdout
