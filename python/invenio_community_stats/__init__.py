"""invenio-community-stats: community statistics, usage-event migration and background
jobs for InvenioRDM, with a Rust core.

The Rust extension (``invenio_community_stats._core``) is imported lazily by the commands,
never at import time of this package, so a broken build cannot break other ``invenio``
commands.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
