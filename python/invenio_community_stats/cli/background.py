"""``<command>-background`` twins: every job command registered with :func:`job` gets a
twin that takes the same options plus ``--pid-dir`` and runs the same command detached
under the process manager (a fresh interpreter in a new session)."""

import contextlib
import functools
import os
import shlex
import signal
import sys
import threading

import click

from ..errors import JobCancelled
from .group import JOB_META, SETTINGS_ENV, BadInput, MultiValueCommand, echo_json, search_settings, with_app

#: command name -> process name
JOBS = {}


@contextlib.contextmanager
def sigterm_cancels():
    """While a foreground job runs, SIGTERM stops it like Ctrl-C: the batch in hand is
    finished and checkpointed, locks are released, exit code 130. (Only where SIGTERM still
    has its default action and only in the main thread; a managed background worker has its
    own handler.)"""
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    ):
        yield
        return

    def handler(signum, frame):
        raise JobCancelled("stopped on request (SIGTERM) after the last checkpoint")

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def job(process_name):
    """Registers a foreground job command (decorate the click command with it)."""

    def register(command):
        JOBS[command.name] = process_name
        callback = command.callback
        command.params.append(
            click.Option(["-v", "--verbose"], is_flag=True, help="Log the core's details too (debug level).")
        )

        @functools.wraps(callback)
        def run(*args, verbose=False, **kwargs):
            ctx = click.get_current_context()
            ctx.meta[JOB_META] = True
            if verbose:
                ctx.find_root().meta["community_stats.verbose"] = True
            with sigterm_cancels():
                return callback(*args, **kwargs)

        command.callback = run
        return command

    return register


def option_args(command, values):
    """The command-line arguments that reproduce ``values`` for ``command``'s options."""
    args = []
    for param in command.params:
        if param.name not in values:
            continue
        value = values[param.name]
        if isinstance(param, click.Argument):
            args.extend(str(v) for v in (value if param.multiple else [value]) if v is not None)
            continue
        opt = max(param.opts, key=len)
        if param.is_flag and param.secondary_opts:
            args.append(opt if value else max(param.secondary_opts, key=len))
        elif param.is_flag:
            if value:
                args.append(opt)
        elif param.multiple:
            for v in value or ():
                args.extend([opt, str(v)])
        elif value is not None:
            args.extend([opt, str(value)])
    return args


def pid_dir_option():
    """The ``--pid-dir`` option of every process command."""
    return click.Option(
        ["--pid-dir"],
        default=None,
        type=click.Path(file_okay=False),
        help="Directory of the PID, status and log files (default: COMMUNITY_STATS_PID_DIR or /tmp).",
    )


def _group_path(ctx):
    """How the operator called our group (``invenio community-stats``, ``community-stats``),
    also from a command nested in one of its subgroups."""
    from .group import community_stats

    while ctx.parent is not None and ctx.command is not community_stats:
        ctx = ctx.parent
    return ctx.command_path


def _app_mode():
    from flask import current_app

    return "standalone" if current_app.name == "invenio-community-stats" else "invenio"


def _make_twin(command, process_name):
    params = [p for p in command.params if p.name != "as_json"]

    @with_app
    def start_in_background(pid_dir, as_json, **values):
        from flask import current_app

        from .. import processes
        from .._bridge import OptionsChecked, checking_only
        from ..config import setting

        # Every option checked exactly as the foreground command checks it, before anything starts.
        try:
            with checking_only():
                command.callback(**values, as_json=False)
        except OptionsChecked:
            pass

        if pid_dir == "":
            raise BadInput("--pid-dir must not be empty")
        pid_dir = pid_dir or setting(current_app.config, "COMMUNITY_STATS_PID_DIR")
        args = option_args(command, values)
        ctx = click.get_current_context()
        prog = _group_path(ctx)
        display = " ".join([prog, command.name, *(shlex.quote(a) for a in args)])
        env = {SETTINGS_ENV: search_settings(retry=True), "COMMUNITY_STATS_APP_MODE": _app_mode()}
        started = processes.start(
            process_name,
            [sys.executable, "-m", "invenio_community_stats", command.name, *args],
            pid_dir=pid_dir,
            command=display,
            env=env,
            log_max_bytes=setting(current_app.config, "COMMUNITY_STATS_LOG_MAX_BYTES"),
            log_backups=setting(current_app.config, "COMMUNITY_STATS_LOG_BACKUPS"),
        )
        if as_json:
            echo_json(started)
            return
        pid_arg = f" --pid-dir {shlex.quote(os.fspath(pid_dir))}"
        click.echo(f"Started {process_name} in the background (PID {started['pid']}).")
        click.echo(f"  PID file:    {started['pid_file']}")
        click.echo(f"  Status file: {started['status_file']}")
        click.echo(f"  Log file:    {started['log_file']}")
        click.echo(f"Watch it:  {prog} process-status {process_name}{pid_arg} --show-log")
        click.echo(f"Follow it: {prog} process-status {process_name}{pid_arg} --follow")
        click.echo(f"Cancel it: {prog} cancel-process {process_name}{pid_arg}")

    first_line = (command.help or "").strip().splitlines()[0] if command.help else command.name
    return MultiValueCommand(
        f"{command.name}-background",
        params=[
            *params,
            pid_dir_option(),
            click.Option(["--json", "as_json"], is_flag=True, help="Print the start result as one JSON document."),
        ],
        callback=start_in_background,
        help=f"{first_line}\n\nRuns `{command.name}` detached as process '{process_name}'; "
        f"watch it with `process-status {process_name}`, stop it with `cancel-process {process_name}`.",
        short_help=f"`{command.name}` in the background ({process_name}).",
    )


def add_background_twins(group):
    """Adds the twin of every registered job command to ``group``."""
    for name, process_name in JOBS.items():
        group.add_command(_make_twin(group.commands[name], process_name))


__all__ = ["job", "JOBS", "add_background_twins", "option_args", "pid_dir_option"]
