"""The one way Python calls the Rust core: the extension imported on first use (so that a
broken build breaks only our commands, never the other ``invenio`` commands), connection
settings and options passed as JSON, results returned as Python objects."""

import contextlib
import contextvars
import json

from .errors import CommunityStatsError, InvalidInputError

#: While set, :func:`run` only checks a job's options (see :func:`checking_only`).
_CHECK_ONLY = contextvars.ContextVar("community_stats_check_only", default=False)


class OptionsChecked(Exception):
    """Raised by :func:`run` in :func:`checking_only` mode once the options passed the core's
    checks: the job was not run."""


def core():
    """The Rust extension ``invenio_community_stats._core``, imported on first use."""
    try:
        from . import _core
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise CommunityStatsError(f"the Rust extension of invenio-community-stats cannot be loaded: {exc}") from exc
    return _core


def check_text(value, key="options"):
    """Every string in ``value`` must be encodable: a name or path that is not valid UTF-8
    (a terminal's bytes, surrogate-escaped by Python) is refused with one line."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            shown = value.encode("utf-8", "replace").decode()
            raise InvalidInputError(f"{key}: {shown!r} is not valid UTF-8") from None
    elif isinstance(value, dict):
        for k, v in value.items():
            check_text(v, k)
    elif isinstance(value, (list, tuple)):
        for v in value:
            check_text(v, key)


def _options_json(options):
    check_text(options or {})
    try:
        return json.dumps(options or {}, allow_nan=False)
    except ValueError:
        raise InvalidInputError("numbers must be finite (not nan or inf)") from None


def run(command, settings, options=None):
    """Runs the core's search command ``command`` (``aggregate``, ``migrate_events``, ...)
    with ``settings`` (the connection settings: a dict, or its JSON text) and ``options``
    (a dict); returns its result. Errors raise :mod:`invenio_community_stats.errors`."""
    settings_json = settings if isinstance(settings, str) else json.dumps(settings)
    if _CHECK_ONLY.get():
        validate(command, options)
    return getattr(core(), command)(settings_json, _options_json(options))


def validate(command, options):
    """Checks ``options`` as the core's ``command`` checks them first thing (bad input raises
    InvalidInputError); in :func:`checking_only` mode then raises :class:`OptionsChecked`.
    For a job that is handed elsewhere (a Celery worker) instead of run by :func:`run`."""
    core().validate_options(command, _options_json(options))
    if _CHECK_ONLY.get():
        raise OptionsChecked(command)


@contextlib.contextmanager
def checking_only():
    """Within it, a command runs up to its call of the core, whose options the core checks
    (exactly as the job would first thing) instead of running the job: bad input raises as it
    would, good input raises :class:`OptionsChecked`. Background twins use it before they
    start the job."""
    token = _CHECK_ONLY.set(True)
    try:
        yield
    finally:
        _CHECK_ONLY.reset(token)
