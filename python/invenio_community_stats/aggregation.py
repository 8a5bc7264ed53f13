"""Python API of the aggregation (the same core call the CLI and the Celery task make)::

    from invenio_community_stats.aggregation import aggregate

    with app.app_context():
        report = aggregate(community_ids=["global"], start_date="2025-06-01")

The work is done by the Rust core; this module only turns the app's configuration into the
core's settings and options. Errors raise the classes of :mod:`invenio_community_stats.errors`.
"""

import json

#: The aggregators, in the order a run applies them.
AGGREGATION_TYPES = (
    "community-usage-delta-agg",
    "community-records-delta-added-agg",
    "community-records-snapshot-added-agg",
    "community-usage-snapshot-agg",
)


def options_from_config(config, **given):
    """The core's aggregation options: what is given, else the ``COMMUNITY_STATS_*`` setting."""
    return {
        "community_ids": list(given.get("community_ids") or ()),
        "aggregation_types": list(given.get("aggregation_types") or ()),
        "start_date": given.get("start_date"),
        "end_date": given.get("end_date"),
        "ignore_bookmark": bool(given.get("ignore_bookmark", False)),
        "update_bookmark": bool(given.get("update_bookmark", True)),
        "opt_in": bool(config.get("COMMUNITY_STATS_OPT_IN", True)),
        "catchup_days": int(config.get("COMMUNITY_STATS_CATCHUP_DAYS", 365)),
        "concurrency": int(config.get("COMMUNITY_STATS_AGGREGATION_CONCURRENCY", 4)),
        "lock_ttl_seconds": int(config.get("COMMUNITY_STATS_AGGREGATION_LOCK_TTL", 600)),
        "top_n": int(config.get("COMMUNITY_STATS_TOP_N", 20)),
    }


def aggregate(*, community_ids=(), aggregation_types=(), start_date=None, end_date=None,
              ignore_bookmark=False, update_bookmark=True, settings_json=None, config=None):
    """Run the aggregation in the current app context (or with ``config`` / ``settings_json``
    given explicitly) and return its report (a dict: ``aggregators`` -> per-community
    ``days_written``, ``documents``, ``errors``, ``duration_seconds``; ``searches``; ...)."""
    from . import _core

    if config is None:
        from flask import current_app

        config = current_app.config
    if settings_json is None:
        from .connection import settings_from_config

        settings_json = json.dumps(settings_from_config(config, {}, retry=True))
    options = options_from_config(
        config,
        community_ids=community_ids,
        aggregation_types=aggregation_types,
        start_date=start_date,
        end_date=end_date,
        ignore_bookmark=ignore_bookmark,
        update_bookmark=update_bookmark,
    )
    return json.loads(_core.aggregate(settings_json, json.dumps(options)))
