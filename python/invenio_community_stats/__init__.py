"""invenio-community-stats: community statistics, usage-event migration and background
jobs for InvenioRDM, with a Rust core.

The Rust extension (``invenio_community_stats._core``) is imported lazily by the commands,
never at import time of this package, so a broken build cannot break other ``invenio``
commands.
"""

__all__ = ["__version__"]


def __getattr__(name):
    """``__version__``: the installed distribution's version, which maturin takes from
    ``Cargo.toml`` (read on first use, not at import)."""
    if name == "__version__":
        from importlib.metadata import version

        return version("invenio-community-stats")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
