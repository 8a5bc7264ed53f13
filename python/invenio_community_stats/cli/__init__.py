"""The ``community-stats`` Click group: parses options, reads the configuration, calls the
Rust core, prints. No business logic lives here.

Nothing here imports the Rust extension or Flask at module level: this package is loaded
by every ``invenio`` command through the ``flask.commands`` entry point. The group with
every command is built on first use of ``community_stats`` (:func:`load`); the standalone
script's process commands (``process-status``, ``cancel-process``, ``list-processes``,
``processes ...``) load only their own module, so that they start fast.
"""

#: The commands that need only ``process_commands`` (their first argument).
PROCESS_COMMANDS = ("process-status", "cancel-process", "list-processes", "processes")


def load():
    """Registers every command (the job commands, their background twins, the reference's
    spellings) on the group, once; returns the group."""
    from . import (  # noqa: F401  (registers the commands)
        aggregation,
        communities,
        generation,
        jobs,
        migration,
        process_commands,
        reference,
    )
    from .background import add_background_twins
    from .group import community_stats

    if not community_stats.all_commands_loaded:
        add_background_twins(community_stats)
        reference.register(community_stats)
        community_stats.all_commands_loaded = True
    return community_stats


def __getattr__(name):
    """``community_stats``: the group with every command (the ``flask.commands`` entry point)."""
    if name == "community_stats":
        return load()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main(argv=None):
    """The standalone ``community-stats`` script."""
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in PROCESS_COMMANDS:
        from . import process_commands  # noqa: F401  (registers the process commands)
        from .group import community_stats as group
    else:
        group = load()
    return group.main(args=args, prog_name="community-stats")


__all__ = ["community_stats", "load", "main"]
