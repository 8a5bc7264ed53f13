"""The ``community-stats`` Click group: parses options, reads the configuration, calls the
Rust core, prints. No business logic lives here.

Nothing here imports the Rust extension or Flask at module level: this package is loaded
by every ``invenio`` command through the ``flask.commands`` entry point, and the process
commands must start fast.
"""

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
from .group import community_stats, main

add_background_twins(community_stats)
reference.register(community_stats)

__all__ = ["community_stats", "main"]
