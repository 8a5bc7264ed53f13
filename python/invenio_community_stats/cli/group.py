"""The group itself, its global options and its error handling."""

import os
import sys

import click

from .._bridge import core
from ..errors import CommunityStatsError, JobCancelled

#: Environment variable through which a background worker receives its (already resolved)
#: connection settings from the command that started it, so that credentials never
#: appear on a command line.
SETTINGS_ENV = "COMMUNITY_STATS_SEARCH_SETTINGS"


class BadInput(click.ClickException):
    """A bad option value: one line on stderr, exit code 2."""

    exit_code = 2


class _OneLineUsageError(click.UsageError):
    """Click usage errors, shown as one line (the usage text is one ``--help`` away)."""

    def show(self, file=None):
        hint = f" (see '{self.ctx.command_path} --help')" if self.ctx else ""
        click.echo(f"Error: {self.format_message()}{hint}", err=True)
        record_job_error(self.format_message())


def record_job_error(message):
    """In a background worker, records ``message`` as the job's error in its status file
    (the process commands show it); elsewhere nothing. Never raises: the error being
    reported matters more."""
    if not os.environ.get("COMMUNITY_STATS_JOB_NAME"):
        return
    try:
        core().record_job_error(message)
    except Exception:  # noqa: BLE001 - best effort, the message is on stderr too
        pass


def fail(message, exit_code=1):
    """Ends the command with ``Error: <message>`` on stderr (recorded as a background job's
    error too) and ``exit_code``."""
    message = one_line(message)
    click.echo(f"Error: {message}", err=True)
    record_job_error(message)
    raise click.exceptions.Exit(exit_code)


def one_line(text):
    """Collapses whitespace so that an error is one line."""
    return " ".join(str(text).split())


def expand_multi_values(command, args):
    """``--event-types view download`` -> ``--event-types view --event-types download``: the
    values after a repeatable option, up to the next option, each go to that option (how
    the seed and the reference write them). Only for commands without positional
    arguments, which could not be told from such values."""
    if any(isinstance(p, click.Argument) for p in command.params):
        return args
    flags = {o for p in command.params if isinstance(p, click.Option) and p.multiple for o in p.opts}
    out, i = [], 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            out.extend(args[i:])
            break
        if arg in flags and i + 1 < len(args):
            out.extend([arg, args[i + 1]])
            i += 2
            while i < len(args) and not args[i].startswith("-"):
                out.extend([arg, args[i]])
                i += 1
            continue
        out.append(arg)
        i += 1
    return out


class MultiValueCommand(click.Command):
    """A command whose repeatable options take their values repeated
    (``--record-ids a --record-ids b``), comma-separated (``--record-ids a,b``) or one after
    the other (``--record-ids a b``)."""

    def parse_args(self, ctx, args):
        return super().parse_args(ctx, expand_multi_values(self, args))


class CommunityStatsGroup(click.Group):
    """A group whose commands turn package errors into one-line messages and exit codes."""

    command_class = MultiValueCommand
    #: True once every command is registered (``cli.load``).
    all_commands_loaded = False

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except _OneLineUsageError:
            raise
        except click.UsageError as exc:
            raise _OneLineUsageError(exc.format_message(), exc.ctx) from exc
        except JobCancelled as exc:
            click.echo(f"Cancelled: {one_line(exc)}", err=True)
            ctx.exit(JobCancelled.exit_code)
        except KeyboardInterrupt:
            click.echo("Interrupted: stopped after the last checkpoint.", err=True)
            ctx.exit(130)
        except CommunityStatsError as exc:
            click.echo(f"Error: {one_line(exc)}", err=True)
            record_job_error(one_line(exc))
            ctx.exit(exc.exit_code)


@click.group("community-stats", cls=CommunityStatsGroup)
@click.option(
    "--search-host",
    "search_hosts",
    multiple=True,
    metavar="URL",
    help="OpenSearch node (repeatable); overrides SEARCH_HOSTS.",
)
@click.option("--index-prefix", default=None, help="Overrides SEARCH_INDEX_PREFIX.")
@click.option("--ca-certs", default=None, type=click.Path(dir_okay=False), help="CA bundle (PEM) for TLS.")
@click.option("--no-verify-certs", is_flag=True, default=False, help="Do not verify TLS certificates.")
@click.pass_context
def community_stats(ctx, search_hosts, index_prefix, ca_certs, no_verify_certs):
    """Community statistics, usage-event migration and background jobs for InvenioRDM."""
    overrides = {}
    if search_hosts:
        overrides["hosts"] = list(search_hosts)
    if index_prefix is not None:
        overrides["index_prefix"] = index_prefix
    if ca_certs:
        overrides["ca_certs"] = ca_certs
    if no_verify_certs:
        overrides["verify_certs"] = False
    ctx.meta["community_stats.overrides"] = overrides


#: Tells the core to draw progress as one live line (``progress.rs``'s ``ENV_PROGRESS``).
PROGRESS_ENV = "COMMUNITY_STATS_PROGRESS"


class _LiveLineHandler:
    """Mixin of a stream handler under a live progress line: a record first clears the
    line (the core redraws it with its next update)."""

    def emit(self, record):
        self.stream.write("\r\x1b[2K")
        super().emit(record)


def configure_logging():
    """Core log records (retries, warnings) go to stderr with a timestamp, unless the
    application already configured logging. At a terminal (and not in a background worker)
    the core draws progress as one live line instead of progress log lines."""
    import logging

    root = logging.getLogger()
    ctx = click.get_current_context(silent=True)
    if ctx is not None and ctx.find_root().meta.get("community_stats.verbose"):
        root.setLevel(logging.DEBUG)
    live = sys.stderr.isatty() and not os.environ.get("COMMUNITY_STATS_JOB_NAME")
    if live:
        os.environ[PROGRESS_ENV] = "terminal"
    if not root.handlers:
        handler_class = logging.StreamHandler
        if live:
            handler_class = type("LiveLineStreamHandler", (_LiveLineHandler, logging.StreamHandler), {})
        handler = handler_class(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        root.addHandler(handler)
        if root.level > logging.INFO or root.level == logging.NOTSET:
            root.setLevel(logging.INFO)


#: ``ctx.meta`` key set while a job command runs (``background.job``): ``with_app`` then
#: refuses to run it when the instance disabled the package (``COMMUNITY_STATS_ENABLED``).
JOB_META = "community_stats.job"


def with_app(func):
    """Runs the command inside an app context: the instance's app under ``invenio``
    (its ScriptInfo), else the standalone app built from ``INVENIO_*`` variables.
    Flask is imported only when such a command runs."""
    import functools

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from flask import current_app, has_app_context
        from flask.cli import ScriptInfo

        ctx = click.get_current_context()

        def call():
            configure_logging()
            if ctx.meta.get(JOB_META):
                from ..config import require_enabled

                require_enabled(current_app.config)
            return func(*args, **kwargs)

        if has_app_context():
            return call()
        info = ctx.find_object(ScriptInfo)
        if info is not None and info.create_app is not None:
            app = info.load_app()
        else:
            from ..app import create_standalone_app

            app = create_standalone_app()
        with app.app_context():
            return call()

    return wrapper


def search_settings(retry=False):
    """The Rust core's connection settings (JSON) for the current command."""
    from_parent = os.environ.get(SETTINGS_ENV)
    if from_parent:
        return from_parent
    import json

    from flask import current_app

    from ..connection import settings_from_config

    ctx = click.get_current_context()
    overrides = ctx.meta.get("community_stats.overrides", {})
    return json.dumps(settings_from_config(current_app.config, overrides, retry=retry))


def run_core(command, options=None, retry=False):
    """Runs a core search command with this command's connection settings (jobs retry
    while the cluster is unreachable: ``retry=True``); returns its result."""
    from .._bridge import run

    return run(command, search_settings(retry=retry), options)


class FiniteFloat(click.FloatRange):
    """A float option (optionally in a range) that refuses nan and infinities."""

    name = "number"

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if number != number or number in (float("inf"), float("-inf")):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


class AliasChoice(click.Choice):
    """A choice that also takes other spellings (``aliases``: spelling -> choice, accepted
    without being listed in ``--help``) and refuses some with the reason (``refused``:
    spelling -> what to use instead)."""

    def __init__(self, choices, aliases=None, refused=None):
        super().__init__(choices)
        self.aliases = dict(aliases or {})
        self.refused = dict(refused or {})

    def convert(self, value, param, ctx):
        if value in self.aliases:
            return self.aliases[value]
        if value in self.refused:
            self.fail(f"{value!r}: {self.refused[value]}", param, ctx)
        return super().convert(value, param, ctx)


def split_values(values, option=None):
    """Values of a repeatable option, each possibly comma-separated, flattened. An empty
    value given explicitly (``--community-id ""``) is bad input, not "all"."""
    out = []
    for v in values:
        parts = [x.strip() for x in v.split(",") if x.strip()]
        if not parts:
            raise BadInput(f"{option or 'an option'} must not be empty")
        out.extend(parts)
    return out


def echo_json(document):
    """Prints exactly one JSON document on stdout."""
    import json

    click.echo(json.dumps(document, indent=2, sort_keys=True))
