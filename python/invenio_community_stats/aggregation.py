"""Python API of the aggregation (the same core call the CLI and the Celery task make)::

    from invenio_community_stats.aggregation import aggregate

    with app.app_context():
        report = aggregate(community_ids=["global"], start_date="2025-06-01")

The work is done by the Rust core; this module only turns the app's configuration into the
core's settings and options. Errors raise the classes of :mod:`invenio_community_stats.errors`.
"""

#: The aggregators, in the order a run applies them (the core's ``Aggregator`` enum; a
#: test checks that the two agree). Kept here so that ``--help`` never loads the extension.
AGGREGATION_TYPES = (
    "community-usage-delta-agg",
    "community-records-delta-added-agg",
    "community-records-snapshot-added-agg",
    "community-usage-snapshot-agg",
)

#: The reference's aggregators by creation or publication date (configured but disabled
#: there): refused with the one to use instead.
UNSUPPORTED_AGGREGATION_TYPES = {
    f"community-records-{kind}-{basis}-agg": (
        f"records are aggregated by date added only: use community-records-{kind}-added-agg"
    )
    for kind in ("delta", "snapshot")
    for basis in ("created", "published")
}

#: What ``read --query-type`` calls the aggregators' documents, in the same order.
READ_TYPES = ("usage-delta", "records-delta-added", "records-snapshot-added", "usage-snapshot")

#: The reference's ``read --query-type`` values (its query names) -> ours.
REFERENCE_READ_TYPES = {
    "community-usage-delta": "usage-delta",
    "community-record-delta-added": "records-delta-added",
    "community-record-snapshot-added": "records-snapshot-added",
    "community-usage-snapshot": "usage-snapshot",
}

#: The reference's record queries by creation or publication date, which it documents but
#: never enabled; records are aggregated by the day they were added to a community here.
UNSUPPORTED_READ_TYPES = {
    f"community-record-{kind}-{basis}": f"records are aggregated by date added only: use community-record-{kind}-added"
    for kind in ("delta", "snapshot")
    for basis in ("created", "published")
}


def options_from_config(config, **given):
    """The core's aggregation options: what is given, and the ``COMMUNITY_STATS_*`` settings."""
    from .config import setting

    return {
        "community_ids": list(given.get("community_ids") or ()),
        "aggregation_types": list(given.get("aggregation_types") or ()),
        "start_date": given.get("start_date"),
        "end_date": given.get("end_date"),
        "ignore_bookmark": bool(given.get("ignore_bookmark", False)),
        "update_bookmark": bool(given.get("update_bookmark", True)),
        "opt_in": bool(setting(config, "COMMUNITY_STATS_OPT_IN")),
        "catchup_days": int(setting(config, "COMMUNITY_STATS_CATCHUP_DAYS")),
        "concurrency": int(setting(config, "COMMUNITY_STATS_AGGREGATION_CONCURRENCY")),
        "lock_ttl_seconds": int(setting(config, "COMMUNITY_STATS_AGGREGATION_LOCK_TTL")),
        "top_n": int(setting(config, "COMMUNITY_STATS_TOP_N")),
    }


def aggregate(
    *,
    community_ids=(),
    aggregation_types=(),
    start_date=None,
    end_date=None,
    ignore_bookmark=False,
    update_bookmark=True,
    settings_json=None,
    config=None,
):
    """Run the aggregation in the current app context (or with ``config`` / ``settings_json``
    given explicitly) and return its report (a dict: ``aggregators`` -> per-community
    ``days_written``, ``documents``, ``errors``, ``duration_seconds``; ``searches``; ...)."""
    from ._bridge import run

    if config is None:
        from flask import current_app

        config = current_app.config
    if settings_json is None:
        from .connection import settings_from_config

        settings_json = settings_from_config(config, {}, retry=True)
    options = options_from_config(
        config,
        community_ids=community_ids,
        aggregation_types=aggregation_types,
        start_date=start_date,
        end_date=end_date,
        ignore_bookmark=ignore_bookmark,
        update_bookmark=update_bookmark,
    )
    return run("aggregate", settings_json, options)
