"""Configuration of invenio-community-stats. Every key has a default here; an instance
overrides it in ``invenio.cfg`` (or as ``INVENIO_<KEY>`` in the environment)."""

COMMUNITY_STATS_PID_DIR = "/tmp"
"""Directory of the background jobs' PID, status, lock and log files (``--pid-dir``)."""

COMMUNITY_STATS_SEARCH_TIMEOUT = 60
"""Timeout of one request to OpenSearch, in seconds."""

COMMUNITY_STATS_JOB_RETRY_SECONDS = 600
"""How long a long-running job keeps retrying while OpenSearch is unreachable or overloaded
(an OpenSearch restart in the middle of a job), in seconds. Quick commands do not retry."""

COMMUNITY_STATS_LOG_MAX_BYTES = 50 * 1024 * 1024
"""Size of a background job's log file before it is rotated (bytes)."""

COMMUNITY_STATS_LOG_BACKUPS = 3
"""Rotated log files kept per background job (``NAME.log.1`` ... ``NAME.log.N``)."""
