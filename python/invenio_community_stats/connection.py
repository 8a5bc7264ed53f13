"""Connection settings: every shape of ``SEARCH_HOSTS`` / ``SEARCH_CLIENT_CONFIG`` that
InvenioRDM instances use, normalised here (and only here) into the one structure the Rust
core takes. Nothing in this module prints or logs a credential.
"""

import ast
import json
from urllib.parse import unquote, urlsplit

from .errors import ConfigError

DEFAULT_HOST = {"scheme": "http", "host": "localhost", "port": 9200, "url_prefix": ""}


def _split_credentials(text):
    """``(scheme, userinfo, rest)`` of ``[scheme://][userinfo@]rest``. The userinfo ends at
    the last ``@``: a password may hold ``@``, ``#``, ``/``, ``?`` or ``:`` unencoded (host
    names and path prefixes never hold ``@``), and no part of it may end up in a message."""
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "", text
    userinfo, at, hostpart = rest.rpartition("@")
    return scheme, (userinfo if at else None), (hostpart if at else rest)


def _redact_url(text):
    """The URL text with any ``user:password@`` replaced by ``***@`` (for error messages)."""
    scheme, userinfo, rest = _split_credentials(text)
    shown = f"***@{rest}" if userinfo is not None else rest
    return f"{scheme}://{shown}" if scheme else shown


def _parse_port(value, original):
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"search host {original!r}: port {value!r} is not a number") from None
    if not 0 < port < 65536:
        raise ConfigError(f"search host {original!r}: port {port} is out of range")
    return port


def _host_from_string(text, use_ssl=None):
    """``host``, ``host:port``, ``http(s)://[user:pass@]host[:port][/prefix]``."""
    original = text.strip()
    if not original:
        raise ConfigError("SEARCH_HOSTS contains an empty host")
    safe = _redact_url(original)
    given_scheme, userinfo, hostpart = _split_credentials(original)
    try:
        parts = urlsplit("//" + hostpart)
        port = parts.port
    except ValueError:
        raise ConfigError(f"search host {safe!r} is not a valid host[:port][/prefix]") from None
    if parts.query or parts.fragment:
        raise ConfigError(f"search host {safe!r} is not a valid host[:port][/prefix]")
    scheme = given_scheme.lower() or ("https" if use_ssl else "http")
    if scheme not in ("http", "https"):
        raise ConfigError(f"search host {safe!r}: scheme must be http or https")
    if not parts.hostname:
        raise ConfigError(f"search host {safe!r} has no host name")
    if port is None:
        port = 443 if scheme == "https" and "://" in original else 9200
    auth = None
    if userinfo is not None:
        user, _, password = userinfo.partition(":")
        auth = (unquote(user), unquote(password))
    host = {
        "scheme": scheme,
        "host": parts.hostname,
        "port": _parse_port(port, safe),
        "url_prefix": parts.path.strip("/"),
    }
    return host, auth


def _auth_from(value, where):
    """``("user", "pass")``, ``["user", "pass"]`` or ``"user:pass"``."""
    if value is None:
        return None
    if isinstance(value, str):
        if ":" not in value:
            raise ConfigError(f"{where}: http_auth must be 'user:password' or (user, password)")
        user, password = value.split(":", 1)
        return (user, password)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, str) for v in value):
        return (value[0], value[1])
    raise ConfigError(f"{where}: http_auth must be 'user:password' or (user, password)")


def _host_from_dict(entry, use_ssl=None):
    if "host" not in entry or not isinstance(entry["host"], str):
        raise ConfigError("SEARCH_HOSTS entry has no 'host' string")
    text = entry["host"]
    ssl = entry.get("use_ssl", use_ssl)
    if "scheme" in entry:
        ssl = entry["scheme"] == "https"
    host, auth = _host_from_string(text, ssl)
    if "://" not in text and ("scheme" in entry or ssl is not None):
        host["scheme"] = "https" if ssl else "http"
    if "port" in entry:
        host["port"] = _parse_port(entry["port"], entry["host"])
    elif host["scheme"] == "https" and "://" not in text and ":" not in text:
        host["port"] = 9200
    if entry.get("url_prefix"):
        host["url_prefix"] = str(entry["url_prefix"]).strip("/")
    auth = _auth_from(entry.get("http_auth"), "SEARCH_HOSTS") or auth
    return host, auth


def normalize_hosts(hosts, use_ssl=None):
    """Every shape of ``SEARCH_HOSTS`` -> ``(list of host dicts, credentials or None)``.

    Accepted: ``None`` (localhost:9200), a string (``"localhost:9200"``, a URL, or a
    Python/JSON literal of a list), a dict, or a list/tuple of strings and dicts.
    """
    if isinstance(hosts, (list, tuple)) and not hosts:
        raise ConfigError("SEARCH_HOSTS is an empty list: name at least one host (unset it for localhost:9200)")
    if hosts is None or hosts == "":
        host = dict(DEFAULT_HOST)
        if use_ssl:
            host["scheme"] = "https"
        return [host], None
    if isinstance(hosts, str):
        stripped = hosts.strip()
        if stripped[:1] in ("[", "{", "("):
            try:
                parsed = ast.literal_eval(stripped)
            except (ValueError, SyntaxError):
                try:
                    parsed = json.loads(stripped)
                except ValueError:
                    raise ConfigError("SEARCH_HOSTS is neither a host nor a list of hosts") from None
            return normalize_hosts(parsed, use_ssl)
        hosts = [h for h in stripped.split(",") if h.strip()]
    if isinstance(hosts, dict):
        hosts = [hosts]
    if not isinstance(hosts, (list, tuple)):
        raise ConfigError(f"SEARCH_HOSTS must be a host, a URL or a list of them, not {type(hosts).__name__}")
    result, auth = [], None
    for entry in hosts:
        if isinstance(entry, str):
            host, entry_auth = _host_from_string(entry, use_ssl)
        elif isinstance(entry, dict):
            host, entry_auth = _host_from_dict(entry, use_ssl)
        else:
            raise ConfigError(f"SEARCH_HOSTS entry of type {type(entry).__name__} is not a host")
        if entry_auth is not None:
            if auth is not None and auth != entry_auth:
                raise ConfigError("SEARCH_HOSTS gives different credentials for different hosts")
            auth = entry_auth
        result.append(host)
    if not result:
        return [dict(DEFAULT_HOST)], None
    return result, auth


def build_settings(
    hosts=None,
    client_config=None,
    index_prefix="",
    timeout=None,
    retry_seconds=0.0,
    ca_certs=None,
    verify_certs=None,
    bulk_max_bytes=None,
):
    """The settings dict for the Rust core from Invenio-style configuration values."""
    client_config = dict(client_config or {})
    if not isinstance(client_config, dict):
        raise ConfigError("SEARCH_CLIENT_CONFIG must be a dict")
    if client_config.get("hosts"):
        hosts = client_config["hosts"]  # as in invenio-search, SEARCH_CLIENT_CONFIG's hosts win
    use_ssl = client_config.get("use_ssl")
    host_list, auth = normalize_hosts(hosts, use_ssl)
    config_auth = _auth_from(client_config.get("http_auth", client_config.get("basic_auth")), "SEARCH_CLIENT_CONFIG")
    auth = config_auth or auth
    if verify_certs is None:
        verify_certs = client_config.get("verify_certs", True)
    if ca_certs is None:
        ca_certs = client_config.get("ca_certs")
    if timeout is None:
        from .config import COMMUNITY_STATS_SEARCH_TIMEOUT

        timeout = client_config.get("timeout", COMMUNITY_STATS_SEARCH_TIMEOUT)
    try:
        timeout = float(timeout)
    except (TypeError, ValueError):
        raise ConfigError(f"search timeout {timeout!r} is not a number") from None
    from .config import COMMUNITY_STATS_BULK_MAX_BYTES

    if index_prefix is None:
        index_prefix = ""
    if not isinstance(index_prefix, str):
        raise ConfigError("SEARCH_INDEX_PREFIX must be a string")
    return {
        "hosts": host_list,
        "username": auth[0] if auth else None,
        "password": auth[1] if auth else None,
        "verify_certs": bool(verify_certs),
        "ca_certs": str(ca_certs) if ca_certs else None,
        "index_prefix": index_prefix,
        "timeout_seconds": timeout,
        "retry_seconds": float(retry_seconds),
        "bulk_max_bytes": int(COMMUNITY_STATS_BULK_MAX_BYTES if bulk_max_bytes is None else bulk_max_bytes),
        "http_compress": bool(client_config.get("http_compress", False)),
    }


def settings_from_config(config, overrides=None, retry=False):
    """Settings from a Flask config mapping, with command-line overrides applied."""
    overrides = overrides or {}
    hosts = overrides.get("hosts") or config.get("SEARCH_HOSTS")
    client_config = dict(config.get("SEARCH_CLIENT_CONFIG") or {})
    if overrides.get("hosts"):
        client_config.pop("hosts", None)
    prefix = overrides.get("index_prefix")
    if prefix is None:
        prefix = config.get("SEARCH_INDEX_PREFIX", "")
    from .config import setting

    retry_seconds = setting(config, "COMMUNITY_STATS_JOB_RETRY_SECONDS") if retry else 0.0
    return build_settings(
        hosts=hosts,
        client_config=client_config,
        index_prefix=prefix,
        timeout=setting(config, "COMMUNITY_STATS_SEARCH_TIMEOUT"),
        retry_seconds=retry_seconds,
        ca_certs=overrides.get("ca_certs"),
        verify_certs=overrides.get("verify_certs"),
        bulk_max_bytes=setting(config, "COMMUNITY_STATS_BULK_MAX_BYTES"),
    )


def describe(settings):
    """A one-line, credential-free description of settings (for messages)."""
    hosts = ", ".join(
        f"{h['scheme']}://{h['host']}:{h['port']}" + (f"/{h['url_prefix']}" if h["url_prefix"] else "")
        for h in settings["hosts"]
    )
    return f"{hosts} (index prefix {settings['index_prefix']!r})"


def env_config(environ, prefix="INVENIO_"):
    """``INVENIO_<KEY>`` variables as config values, parsed like invenio-config does
    (``ast.literal_eval``, falling back to the raw string)."""
    config = {}
    for key, value in environ.items():
        if not key.startswith(prefix) or len(key) == len(prefix):
            continue
        try:
            config[key[len(prefix) :]] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            config[key[len(prefix) :]] = value
    return config
