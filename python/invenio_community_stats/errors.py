"""Exceptions raised by the core (mapped from its Rust error type) and by the CLI.

Importing this module never imports the Rust extension.
"""


class CommunityStatsError(Exception):
    """Base class of every error of this package."""

    exit_code = 1


class InvalidInputError(CommunityStatsError, ValueError):
    """A value given by the operator is malformed or out of range."""

    exit_code = 2


class ConfigError(CommunityStatsError):
    """The configuration or connection settings cannot be used."""


class SearchConnectionError(CommunityStatsError):
    """The OpenSearch cluster could not be reached."""


class SearchAuthError(CommunityStatsError):
    """The OpenSearch cluster refused the credentials."""


class SearchError(CommunityStatsError):
    """The OpenSearch cluster answered a request with an error."""


class DataError(CommunityStatsError):
    """The data in the cluster does not allow the operation (missing or existing indices...)."""


class ProcessError(CommunityStatsError):
    """Starting, watching or stopping a background job failed."""


class ConflictError(CommunityStatsError):
    """Another run holds what this one needs (the aggregation lock, a running aggregation)."""


class JobCancelled(CommunityStatsError):
    """The job stopped early because it was asked to, after saving its checkpoint."""

    exit_code = 130


__all__ = [
    "CommunityStatsError",
    "InvalidInputError",
    "ConfigError",
    "SearchConnectionError",
    "SearchAuthError",
    "SearchError",
    "DataError",
    "ProcessError",
    "ConflictError",
    "JobCancelled",
]
