"""Configuration of invenio-community-stats. Every key has a default here, and nowhere else
(the Rust core takes every value from its caller); an instance overrides it in
``invenio.cfg`` (or as ``INVENIO_<KEY>`` in the environment). Read a key with
:func:`setting`, which falls back to the default here when the app's config lacks it."""

COMMUNITY_STATS_ENABLED = True
"""False: every job (aggregation, migration, generation, their background twins and the
Celery task) refuses to run and says why; status and process commands still work."""

COMMUNITY_STATS_PID_DIR = "/tmp"
"""Directory of the background jobs' PID, status, lock and log files (``--pid-dir``)."""

COMMUNITY_STATS_SEARCH_TIMEOUT = 60
"""Timeout of one request to OpenSearch, in seconds (it wins over ``SEARCH_CLIENT_CONFIG``'s
``timeout``)."""

COMMUNITY_STATS_JOB_RETRY_SECONDS = 600
"""How long a long-running job keeps retrying while OpenSearch is unreachable or overloaded
(an OpenSearch restart in the middle of a job), in seconds. Quick commands do not retry."""

COMMUNITY_STATS_BULK_MAX_BYTES = 4 * 1024 * 1024
"""The largest bulk request body the jobs send (bytes). A request that OpenSearch or a proxy
in front of it refuses as too large (HTTP 413: ``http.max_content_length``, nginx's
``client_max_body_size``) is split in two and resent, with a warning; set this below the
limit to avoid the extra round trips."""

COMMUNITY_STATS_LOG_MAX_BYTES = 50 * 1024 * 1024
"""Size of a background job's log file before it is rotated (bytes)."""

COMMUNITY_STATS_LOG_BACKUPS = 3
"""Rotated log files kept per background job (``NAME.log.1`` ... ``NAME.log.N``)."""

COMMUNITY_STATS_OPT_IN = True
"""Aggregate only communities whose ``custom_fields["stats:dashboard_enabled"]`` is true
(plus ``global``) when no ``--community-id`` is given. False: every community."""

COMMUNITY_STATS_CATCHUP_DAYS = 365
"""Most days one aggregation run covers per community; a longer history takes several runs
(the run says so)."""

COMMUNITY_STATS_AGGREGATION_CONCURRENCY = 4
"""How much one aggregation run does at a time: the usage delta (every community in one
pass) reads this many spans of days concurrently; the other aggregators run this many
communities concurrently (each community's days stay in order)."""

COMMUNITY_STATS_AGGREGATION_LOCK_TTL = 600
"""Seconds the aggregation lock (a document in OpenSearch) lives without renewal; a running
aggregation renews it, so only a crashed run's lock expires (or use ``clear-lock``)."""

COMMUNITY_STATS_TOP_N = 20
"""Items kept in the snapshots' ``by_view`` / ``by_download`` lists of the "top" subcounts."""

COMMUNITY_STATS_AGGREGATION_SCHEDULE = None
"""Celery beat schedule of the aggregation task (a ``crontab`` or ``timedelta``), e.g.
``crontab(minute=40)`` for hourly runs. None (the default): no scheduled runs, unless
``COMMUNITY_STATS_SCHEDULED_AGG_TASKS_ENABLED`` is true."""

COMMUNITY_STATS_SCHEDULED_AGG_TASKS_ENABLED = False
"""The reference's switch: True puts the aggregation on the beat schedule hourly at minute
40 under the reference's entry name (``stats-aggregate-community-record-stats``), when
``COMMUNITY_STATS_AGGREGATION_SCHEDULE`` does not give a schedule of its own."""

COMMUNITY_STATS_INVENIO_PACKAGES_DIR = None
"""Where ``load-sample-data`` finds InvenioRDM's own index mappings and event templates
when invenio-rdm-records and invenio-communities are not installed: a directory laid out
like site-packages, as ``scripts/fetch-invenio-packages`` makes from the PyPI wheels
(``.cache/invenio-packages/site``, used by default in a source checkout). Installed
packages are always looked at too."""

COMMUNITY_STATS_MIGRATION_BATCH_SIZE = 1000
"""``migrate-events --batch-size``: events per batch (a checkpoint every few batches)."""

COMMUNITY_STATS_MIGRATION_SLICES = 2
"""``migrate-events --slices``: point-in-time slices read in parallel, shared by the months
migrated at the same time (``--parallel-months``; at least one each)."""

COMMUNITY_STATS_MIGRATION_PARALLEL_MONTHS = 1
"""``migrate-events --parallel-months``: closed months migrated at the same time (their fixed
work overlaps the others' copying; each lane holds its own record cache, so memory grows);
live months come after them, one at a time."""

COMMUNITY_STATS_MIGRATION_MAX_MEMORY_PERCENT = 85.0
"""``migrate-events --max-memory-percent``: system memory use at which a migration stops,
checkpointed (a re-run resumes)."""

COMMUNITY_STATS_MIGRATION_LOCK_TTL = 600
"""Seconds the migration lock (a document in OpenSearch: one migration per index prefix at
a time) lives without renewal; a running migration renews it."""

COMMUNITY_STATS_MIGRATION_VERIFY_SAMPLE = 100
"""Events of each month compared field by field with their copy before the month is switched."""

COMMUNITY_STATS_GENERATION_BATCH_SIZE = 2000
"""Documents per bulk request of ``generate-usage-events`` (and records per page of
``generate-community-events``, whose events go out two record pages at a time)."""


#: The accepted range of every numeric setting: (type, lowest, highest).
RANGES = {
    "COMMUNITY_STATS_SEARCH_TIMEOUT": (float, 0.1, 3600),
    "COMMUNITY_STATS_JOB_RETRY_SECONDS": (float, 0, 86400),
    "COMMUNITY_STATS_LOG_MAX_BYTES": (int, 1024, 1 << 40),
    "COMMUNITY_STATS_BULK_MAX_BYTES": (int, 1024, 1 << 30),
    "COMMUNITY_STATS_LOG_BACKUPS": (int, 0, 100),
    "COMMUNITY_STATS_CATCHUP_DAYS": (int, 1, 36500),
    "COMMUNITY_STATS_AGGREGATION_CONCURRENCY": (int, 1, 64),
    "COMMUNITY_STATS_AGGREGATION_LOCK_TTL": (int, 10, 86400),
    "COMMUNITY_STATS_TOP_N": (int, 1, 1000),
    "COMMUNITY_STATS_MIGRATION_BATCH_SIZE": (int, 1, 10000),
    "COMMUNITY_STATS_MIGRATION_SLICES": (int, 1, 16),
    "COMMUNITY_STATS_MIGRATION_PARALLEL_MONTHS": (int, 1, 8),
    "COMMUNITY_STATS_MIGRATION_MAX_MEMORY_PERCENT": (float, 1, 100),
    "COMMUNITY_STATS_MIGRATION_VERIFY_SAMPLE": (int, 0, 10000),
    "COMMUNITY_STATS_MIGRATION_LOCK_TTL": (int, 10, 86400),
    "COMMUNITY_STATS_GENERATION_BATCH_SIZE": (int, 2, 10000),
}


#: The reference's (invenio-stats-dashboard's) keys that mean what one of ours means: an
#: instance configured for the reference keeps its settings. Ours wins when both are set.
REFERENCE_KEYS = {
    "STATS_DASHBOARD_COMMUNITY_OPT_IN": "COMMUNITY_STATS_OPT_IN",
    "COMMUNITY_STATS_CATCHUP_INTERVAL": "COMMUNITY_STATS_CATCHUP_DAYS",
    "COMMUNITY_STATS_TOP_SUBCOUNT_LIMIT": "COMMUNITY_STATS_TOP_N",
    "STATS_DASHBOARD_REINDEXING_BATCH_SIZE": "COMMUNITY_STATS_MIGRATION_BATCH_SIZE",
    "STATS_DASHBOARD_REINDEXING_MAX_MEMORY_PERCENT": "COMMUNITY_STATS_MIGRATION_MAX_MEMORY_PERCENT",
    "STATS_DASHBOARD_REINDEXING_MAX_SPOT_CHECK_SAMPLE_SIZE": "COMMUNITY_STATS_MIGRATION_VERIFY_SAMPLE",
}

#: Ours -> the reference's key (the inverse of :data:`REFERENCE_KEYS`).
_ALIASES = {ours: theirs for theirs, ours in REFERENCE_KEYS.items()}


def configured(config, key):
    """The value the instance gave ``key`` (or its reference alias), else this module's
    default. The extension registers every default with this (so that an alias set in
    ``invenio.cfg`` is not hidden by our default)."""
    if key in config:
        return config[key]
    alias = _ALIASES.get(key)
    if alias is not None and alias in config:
        return config[alias]
    return globals()[key]


def setting(config, key):
    """``config[key]`` (or its reference alias, :data:`REFERENCE_KEYS`), or this module's
    default when the app's configuration lacks both (a config the extension did not
    initialise, such as a plain dict). A numeric setting out of its range (:data:`RANGES`)
    raises a one-line ConfigError naming the key and the range."""
    value = configured(config, key)
    if key not in RANGES:
        return value
    kind, low, high = RANGES[key]
    try:
        number = kind(value)
        valid = not isinstance(value, bool) and low <= number <= high and (kind is float or number == value)
    except (TypeError, ValueError, OverflowError):
        valid = False
    if not valid:
        from .errors import ConfigError

        what = "a whole number" if kind is int else "a number"
        named = key if key in config or _ALIASES.get(key) not in config else f"{_ALIASES[key]} (read as {key})"
        raise ConfigError(f"{named} must be {what} from {low} to {high} (got {value!r})")
    return number


def require_enabled(config):
    """Raises a one-line ConfigError when ``COMMUNITY_STATS_ENABLED`` is false (every job
    calls this before it starts)."""
    if not configured(config, "COMMUNITY_STATS_ENABLED"):
        from .errors import ConfigError

        raise ConfigError(
            "community statistics are disabled in this instance (COMMUNITY_STATS_ENABLED = False): "
            "set it to True to run jobs"
        )
