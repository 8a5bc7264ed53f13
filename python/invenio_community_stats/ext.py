"""The Flask extension: registers the ``COMMUNITY_STATS_*`` defaults on the app."""

from . import config


class InvenioCommunityStats:
    """Invenio extension of invenio-community-stats."""

    def __init__(self, app=None):
        """Extension initialisation."""
        if app:
            self.init_app(app)

    def init_app(self, app):
        """Flask application initialisation."""
        self.init_config(app)
        app.extensions["invenio-community-stats"] = self

    @staticmethod
    def init_config(app):
        """Set every ``COMMUNITY_STATS_*`` default that the instance does not override."""
        for key in dir(config):
            if key.startswith("COMMUNITY_STATS_"):
                app.config.setdefault(key, getattr(config, key))
