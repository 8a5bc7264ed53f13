"""The one way Python calls the Rust core: the extension imported on first use (so that a
broken build breaks only our commands, never the other ``invenio`` commands), connection
settings and options passed as JSON, results returned as Python objects."""

import json

from .errors import CommunityStatsError


def core():
    """The Rust extension ``invenio_community_stats._core``, imported on first use."""
    try:
        from . import _core
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise CommunityStatsError(f"the Rust extension of invenio-community-stats cannot be loaded: {exc}") from exc
    return _core


def run(command, settings, options=None):
    """Runs the core's search command ``command`` (``aggregate``, ``migrate_events``, ...)
    with ``settings`` (the connection settings: a dict, or its JSON text) and ``options``
    (a dict); returns its result. Errors raise :mod:`invenio_community_stats.errors`."""
    settings_json = settings if isinstance(settings, str) else json.dumps(settings)
    return getattr(core(), command)(settings_json, json.dumps(options or {}))
