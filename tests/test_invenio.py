"""The real ``invenio`` command (invenio-app) finds our group through ``flask.commands``
and our commands read the instance's configuration."""

import json
import os
import shutil
import subprocess

INVENIO = shutil.which("invenio")


def invenio_env(tmp_path, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("INVENIO_")}
    env.pop("COMMUNITY_STATS_APP_MODE", None)
    instance = tmp_path / "instance"
    instance.mkdir(exist_ok=True)
    env["INVENIO_INSTANCE_PATH"] = str(instance)
    env["INVENIO_SECRET_KEY"] = "test-secret-key"
    env.update(extra)
    return env


def test_invenio_lists_and_helps_our_group(tmp_path):
    env = invenio_env(tmp_path)
    top = subprocess.run([INVENIO, "--help"], env=env, capture_output=True, text=True, timeout=120)
    assert top.returncode == 0, top.stderr
    assert "community-stats" in top.stdout
    sub = subprocess.run([INVENIO, "community-stats", "--help"], env=env, capture_output=True, text=True, timeout=120)
    assert sub.returncode == 0, sub.stderr
    assert "load-sample-data" in sub.stdout and "info" in sub.stdout


def test_invenio_command_reads_the_app_config(tmp_path, search_url, search, index_prefix):
    env = invenio_env(
        tmp_path,
        INVENIO_SEARCH_HOSTS=repr([search_url]),
        INVENIO_SEARCH_INDEX_PREFIX=index_prefix,
    )
    # Config can also come from the instance's invenio.cfg; the prefix from the env wins there.
    proc = subprocess.run(
        [INVENIO, "community-stats", "load-sample-data", "--records", "7", "--events-per-record", "1", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["index_prefix"] == index_prefix
    assert search.count(f"{index_prefix}rdmrecords-records") == 7
    proc = subprocess.run(
        [INVENIO, "community-stats", "info", "--json"], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["index_prefix"] == index_prefix
    assert info["indices"]["records"]["documents"] == 7


def test_invenio_cfg_in_instance_is_used(tmp_path, search_url, index_prefix):
    env = invenio_env(tmp_path)
    (tmp_path / "instance" / "invenio.cfg").write_text(
        f"SEARCH_HOSTS = [{search_url!r}]\nSEARCH_INDEX_PREFIX = {index_prefix!r}\n"
    )
    proc = subprocess.run(
        [INVENIO, "community-stats", "info", "--json"], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["index_prefix"] == index_prefix


def test_python_dash_m_dispatches_to_invenio(tmp_path, search_url, index_prefix):
    import sys

    env = invenio_env(tmp_path, INVENIO_SEARCH_HOSTS=repr([search_url]), INVENIO_SEARCH_INDEX_PREFIX=index_prefix)
    proc = subprocess.run(
        [sys.executable, "-m", "invenio_community_stats", "info", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["index_prefix"] == index_prefix
