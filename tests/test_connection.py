"""Normalisation of every SEARCH_HOSTS / SEARCH_CLIENT_CONFIG shape (no cluster needed)."""

import json
import re

import pytest

from invenio_community_stats.connection import build_settings, env_config, normalize_hosts, settings_from_config
from invenio_community_stats.errors import ConfigError


def hosts_of(value, **kw):
    hosts, _ = normalize_hosts(value, **kw)
    return [(h["scheme"], h["host"], h["port"], h["url_prefix"]) for h in hosts]


@pytest.mark.parametrize(
    "value, expected",
    [
        (None, [("http", "localhost", 9200, "")]),
        ("localhost:9200", [("http", "localhost", 9200, "")]),
        ("search", [("http", "search", 9200, "")]),
        (["search:9200"], [("http", "search", 9200, "")]),
        ("http://os1:9201,http://os2:9202", [("http", "os1", 9201, ""), ("http", "os2", 9202, "")]),
        ("https://os.example", [("https", "os.example", 443, "")]),
        (["https://u:p@os.example:443/prefix"], [("https", "os.example", 443, "prefix")]),
        ({"host": "x", "port": 9201}, [("http", "x", 9201, "")]),
        ([{"host": "x", "port": 9200, "use_ssl": True}], [("https", "x", 9200, "")]),
        ([{"host": "x", "port": 9200, "scheme": "https", "url_prefix": "/os/"}], [("https", "x", 9200, "os")]),
        ("['search:9200']", [("http", "search", 9200, "")]),
        ('[{"host": "localhost", "port": 9201}]', [("http", "localhost", 9201, "")]),
    ],
)
def test_host_shapes(value, expected):
    assert hosts_of(value) == expected


def test_credentials_from_url_dict_and_client_config():
    _, auth = normalize_hosts(["https://admin:s%40cret@os:9200"])
    assert auth == ("admin", "s@cret")
    _, auth = normalize_hosts([{"host": "x", "http_auth": ("u", "p")}])
    assert auth == ("u", "p")
    settings = build_settings(
        hosts="localhost:9200",
        client_config={"http_auth": "user:pw", "use_ssl": True, "verify_certs": False, "ca_certs": "/ca.pem"},
        index_prefix="kc-",
    )
    assert settings["username"] == "user" and settings["password"] == "pw"
    assert settings["hosts"][0]["scheme"] == "https"
    assert settings["verify_certs"] is False and settings["ca_certs"] == "/ca.pem"
    assert settings["index_prefix"] == "kc-"


def test_client_config_hosts_win_over_search_hosts():
    settings = build_settings(hosts="a:9200", client_config={"hosts": ["b:9300"]})
    assert [h["host"] for h in settings["hosts"]] == ["b"]


@pytest.mark.parametrize(
    "value",
    ["ftp://x", "http://:9200", "x:notaport", "x:70000", 42, [None], [{"port": 9200}], "{bad"],
)
def test_bad_hosts_raise_config_error(value):
    with pytest.raises(ConfigError):
        normalize_hosts(value)


def test_error_messages_never_contain_the_password():
    with pytest.raises(ConfigError) as info:
        normalize_hosts(["ftp://admin:topsecret@x:1"])
    assert "topsecret" not in str(info.value)


@pytest.mark.parametrize("password", ["Pw#Hash", "pw/slash", "pw?query", "p@ss@word", "pw:colon", "a#b/c?d@e"])
def test_unencoded_passwords_are_read_whole_and_never_shown(password):
    """A password with an unencoded #, /, ?, @ or : is the credentials' (up to the last @),
    and no part of it ever appears in a message."""
    hosts, auth = normalize_hosts([f"https://admin:{password}@os.example:9243/search"])
    assert auth == ("admin", password)
    assert [(h["host"], h["port"], h["url_prefix"]) for h in hosts] == [("os.example", 9243, "search")]
    for bad in (
        f"https://admin:{password}@os.example:port/x",
        f"ftp://admin:{password}@x:1",
        f"https://admin:{password}@:9200",
    ):
        with pytest.raises(ConfigError) as info:
            normalize_hosts([bad])
        message = str(info.value)
        fragments = {password} | {part for part in re.split(r"[#/?@:]", password) if len(part) > 2}
        assert not any(f in message for f in fragments), (bad, message)
        assert "***@" in message


def test_conflicting_credentials_rejected():
    with pytest.raises(ConfigError):
        normalize_hosts(["http://a:b@h1", "http://c:d@h2"])


def test_env_config_parses_like_invenio_config():
    cfg = env_config(
        {
            "INVENIO_SEARCH_HOSTS": "['search:9200']",
            "INVENIO_SEARCH_INDEX_PREFIX": "kc-",
            "INVENIO_COMMUNITY_STATS_SEARCH_TIMEOUT": "5",
            "OTHER": "x",
        }
    )
    assert cfg == {"SEARCH_HOSTS": ["search:9200"], "SEARCH_INDEX_PREFIX": "kc-", "COMMUNITY_STATS_SEARCH_TIMEOUT": 5}


def test_overrides_and_retry():
    config = {"SEARCH_HOSTS": ["a:9200"], "SEARCH_INDEX_PREFIX": "p-", "COMMUNITY_STATS_JOB_RETRY_SECONDS": 42}
    s = settings_from_config(config, {"hosts": ["b:9201"], "index_prefix": "q-"}, retry=True)
    assert s["hosts"][0]["host"] == "b" and s["index_prefix"] == "q-" and s["retry_seconds"] == 42
    assert settings_from_config(config)["retry_seconds"] == 0


def test_rust_core_accepts_what_python_builds():
    from invenio_community_stats import _core
    from invenio_community_stats.errors import ConfigError as CE

    _core.check_settings(json.dumps(build_settings(hosts=["https://u:p@h:9200/x"], index_prefix="kc-")))
    bad = build_settings(hosts=["h:9200"], index_prefix="bad prefix")
    with pytest.raises(CE):
        _core.check_settings(json.dumps(bad))


def test_a_dead_host_in_the_list_is_set_aside_and_the_next_one_answers(cli, cli_env, search_url, index_prefix):
    """One unreachable host among the configured ones: quick commands and jobs use the next
    one (the dead one is set aside, warned about once per job, not per request); when none
    answers, the message names the hosts that failed."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"  # nothing listens once closed
    env = dict(cli_env, INVENIO_SEARCH_HOSTS=repr([dead, search_url]))
    for where in ([dead, search_url], [search_url, dead]):
        env = dict(cli_env, INVENIO_SEARCH_HOSTS=repr(where))
        info = cli("info", "--json", env=env)
        assert info.returncode == 0, info.stderr
    loaded = cli("load-sample-data", "--records", "30", "--events-per-record", "3", "--months", "1", env=env)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stderr.count("cannot be reached") <= 1, loaded.stderr
    report = cli("aggregate", "-c", "global", "--end-date", "2030-01-01", "--json", env=env)
    assert report.returncode == 0 and json.loads(report.stdout)["errors"] == 0, report.stderr
    assert report.stderr.count("cannot be reached") <= 1, report.stderr
    # Every host down: one line naming them (a quick command does not retry).
    other = dead.rsplit(":", 1)[0] + ":9"
    down = cli("info", env=dict(cli_env, INVENIO_SEARCH_HOSTS=repr([dead, other])))
    (line,) = [x for x in down.stderr.splitlines() if x.startswith("Error:")]
    assert down.returncode == 1 and dead in line and other in line, down.stderr


@pytest.mark.parametrize("compress", [False, True])
def test_replies_are_compressed_only_when_http_compress_asks(cli, cli_env, search_url, index_prefix, compress):
    """As with opensearch-py: plain replies by default (compressing costs the node, unpacking
    costs us); ``SEARCH_CLIENT_CONFIG = {"http_compress": True}`` lets the node gzip them, and
    the job reads them the same."""
    from fault_proxy import FaultProxy

    with FaultProxy(search_url) as proxy:
        env = dict(
            cli_env,
            INVENIO_SEARCH_HOSTS=repr([proxy.url]),
            INVENIO_SEARCH_CLIENT_CONFIG=repr({"http_compress": compress}),
        )
        loaded = cli("load-sample-data", "--records", "20", "--events-per-record", "2", "--months", "1", env=env)
        assert loaded.returncode == 0, loaded.stderr
        report = cli("aggregate", "-c", "global", "--end-date", "2030-01-01", "--json", env=env)
        assert report.returncode == 0 and json.loads(report.stdout)["errors"] == 0, report.stderr
        assert all(a["documents"] > 0 for a in json.loads(report.stdout)["aggregators"]), report.stdout
    asked = {a for a, _ in proxy.encodings}
    got = {e for _, e in proxy.encodings}
    assert len(proxy.encodings) > 10
    if compress:
        assert all(a and "gzip" in a for a in asked), asked
        assert "gzip" in got, got
    else:
        assert asked == {"identity"} and got == {None}, (asked, got)
