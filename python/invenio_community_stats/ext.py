"""The Flask extension: registers the ``COMMUNITY_STATS_*`` defaults on the app (the
reference's keys of the same meaning are read too: ``config.REFERENCE_KEYS``), and the
aggregation task's beat schedule when ``COMMUNITY_STATS_AGGREGATION_SCHEDULE`` (or the
reference's ``COMMUNITY_STATS_SCHEDULED_AGG_TASKS_ENABLED``) is set."""

from . import config

#: The beat schedule entry's name, and the task it runs (:mod:`invenio_community_stats.tasks`;
#: not imported here, so the extension does not need Celery).
BEAT_ENTRY = "community-stats-aggregation"
TASK_NAME = "invenio_community_stats.tasks.aggregate_community_stats"

#: The reference's (invenio-stats-dashboard's) beat entry and task names: with
#: ``COMMUNITY_STATS_SCHEDULED_AGG_TASKS_ENABLED`` the aggregation is scheduled under that
#: entry; the task name runs ours when the reference is not installed (``tasks.py``).
REFERENCE_BEAT_ENTRY = "stats-aggregate-community-record-stats"
REFERENCE_TASK_NAME = "invenio_stats_dashboard.tasks.aggregation_tasks.aggregate_community_record_stats"


class InvenioCommunityStats:
    """Invenio extension of invenio-community-stats."""

    def __init__(self, app=None):
        """Extension initialisation."""
        if app:
            self.init_app(app)

    def init_app(self, app):
        """Flask application initialisation."""
        self.init_config(app)
        self.init_beat_schedule(app)
        app.extensions["invenio-community-stats"] = self

    @staticmethod
    def init_config(app):
        """Set every ``COMMUNITY_STATS_*`` default that the instance does not override."""
        for key in dir(config):
            if key.startswith("COMMUNITY_STATS_"):
                app.config.setdefault(key, config.configured(app.config, key))

    @staticmethod
    def init_beat_schedule(app):
        """Add the aggregation task to ``CELERY_BEAT_SCHEDULE`` when
        ``COMMUNITY_STATS_AGGREGATION_SCHEDULE`` is set (an entry of the instance's own with
        the same name wins).

        flask-celeryext (invenio-celery) copies the app's ``CELERY_*`` keys into Celery's
        configuration (``CELERY_BEAT_SCHEDULE`` -> ``beat_schedule``) when invenio-celery is
        initialised; ``invenio_app.celery`` (the app of ``celery -A invenio_app.celery
        beat``) copies them again once every extension is loaded. Extensions load in entry
        point order, so if invenio-celery came first its Celery app is updated here too."""
        schedule = app.config.get("COMMUNITY_STATS_AGGREGATION_SCHEDULE")
        entry = BEAT_ENTRY
        if schedule is None and app.config.get("COMMUNITY_STATS_SCHEDULED_AGG_TASKS_ENABLED"):
            # The reference's switch: hourly at minute 40, under the reference's entry name.
            from celery.schedules import crontab

            schedule, entry = crontab(minute="40", hour="*"), REFERENCE_BEAT_ENTRY
        if schedule is None:
            return
        beat = dict(app.config.get("CELERY_BEAT_SCHEDULE") or {})
        beat.setdefault(entry, {"task": TASK_NAME, "schedule": schedule})
        app.config["CELERY_BEAT_SCHEDULE"] = beat
        celery_ext = app.extensions.get("invenio-celery")
        if celery_ext is not None and getattr(celery_ext, "celery", None) is not None:
            celery_ext.celery.conf.beat_schedule = beat
