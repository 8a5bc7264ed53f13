"""The standalone Flask app used when the commands run outside an Invenio instance
(``community-stats ...`` or ``python -m invenio_community_stats``): its configuration comes
from ``INVENIO_*`` environment variables, parsed as invenio-config parses them."""

import os

from flask import Flask

from .connection import env_config
from .ext import InvenioCommunityStats


def create_standalone_app():
    """A minimal app with ``INVENIO_*`` settings and our extension's defaults."""
    app = Flask("invenio-community-stats")
    app.config.update(env_config(os.environ))
    InvenioCommunityStats(app)
    return app
