"""Celery tasks of invenio-community-stats, registered through the ``invenio_celery.tasks``
entry point: the same aggregation as ``invenio community-stats aggregate``, for an
instance's beat schedule (``COMMUNITY_STATS_AGGREGATION_SCHEDULE``) or ``send_task``.

When invenio-stats-dashboard (the reference package) is not installed, its task name
(:data:`~invenio_community_stats.ext.REFERENCE_TASK_NAME`) is registered too, with its
arguments: a beat entry or a ``send_task`` written for the reference runs this aggregation.

invenio-celery runs tasks in the Flask app context of the worker, so the aggregation reads
the instance's configuration from ``current_app``.
"""

import importlib.util

from celery import shared_task

from .aggregation import aggregate
from .ext import REFERENCE_TASK_NAME, TASK_NAME


def _aggregate(**given):
    from flask import current_app

    from .config import require_enabled

    require_enabled(current_app.config)
    return aggregate(**given)


@shared_task(name=TASK_NAME, ignore_result=False)
def aggregate_community_stats(
    community_ids=None,
    aggregation_types=None,
    start_date=None,
    end_date=None,
    ignore_bookmark=False,
    update_bookmark=True,
):
    """Run the aggregation (see :func:`invenio_community_stats.aggregation.aggregate`) and
    return its report (a dict)."""
    return _aggregate(
        community_ids=community_ids or (),
        aggregation_types=aggregation_types or (),
        start_date=start_date,
        end_date=end_date,
        ignore_bookmark=ignore_bookmark,
        update_bookmark=update_bookmark,
    )


def aggregate_community_record_stats(
    aggregations=None,
    start_date=None,
    end_date=None,
    update_bookmark=True,
    ignore_bookmark=False,
    community_ids=None,
    verbose=False,
    eager=False,
):
    """The reference's task, with its arguments in its order: ``aggregations`` are the
    aggregator names (the same four as ours); ``verbose`` and ``eager`` only changed the
    reference's report and banner and are accepted as such. Returns our report."""
    return _aggregate(
        community_ids=community_ids or (),
        aggregation_types=aggregations or (),
        start_date=start_date,
        end_date=end_date,
        ignore_bookmark=ignore_bookmark,
        update_bookmark=update_bookmark,
    )


if importlib.util.find_spec("invenio_stats_dashboard") is None:
    aggregate_community_record_stats = shared_task(name=REFERENCE_TASK_NAME, ignore_result=False)(
        aggregate_community_record_stats
    )
