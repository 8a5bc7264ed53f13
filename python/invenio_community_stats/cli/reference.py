"""The reference package's spellings (invenio-stats-dashboard at f621a3e), accepted beside
ours so that operators' scripts and cron lines keep working: its groups ``usage-events``
and ``community-events``, whose commands are ours under its names (the same command
objects: nothing is done twice). Hidden from ``--help``; the README lists every spelling.
Its options of the same meaning are declared on our commands themselves."""

from .group import CommunityStatsGroup, community_stats

#: The reference's ``<group> <command>`` -> our command (flat name).
REFERENCE_COMMANDS = {
    "usage-events": {
        "migrate": "migrate-events",
        "migrate-background": "migrate-events-background",
        "status": "migration-status",
        "generate": "generate-usage-events",
        "generate-background": "generate-usage-events-background",
        "clear-bookmarks": "clear-migration-checkpoints",
    },
    "community-events": {
        "generate": "generate-community-events",
        "generate-background": "generate-community-events-background",
        "status": "community-events-status",
    },
}


@community_stats.group("usage-events", cls=CommunityStatsGroup, hidden=True)
def usage_events():
    """The reference's spelling of the usage-event commands (migrate-events, migration-status,
    generate-usage-events, clear-migration-checkpoints)."""


@community_stats.group("community-events", cls=CommunityStatsGroup, hidden=True)
def community_events():
    """The reference's spelling of generate-community-events and community-events-status."""


@community_stats.command(
    "cache",
    hidden=True,
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,
)
def cache():
    """The reference's response cache commands: this package has no such cache."""
    from .group import fail

    fail(
        "this package has no response cache (the reference's 'cache' commands): the dashboards read the "
        "aggregation indices, which 'aggregate' keeps up to date",
        exit_code=2,
    )


def register(group):
    """Adds our commands to the reference's groups under its names (call once every command,
    background twins included, is registered on ``group``)."""
    for group_name, names in REFERENCE_COMMANDS.items():
        target = group.commands[group_name]
        for theirs, ours in names.items():
            target.add_command(group.commands[ours], theirs)


__all__ = ["REFERENCE_COMMANDS", "register"]
