"""Celery task of invenio-community-stats, registered through the ``invenio_celery.tasks``
entry point: the same aggregation as ``invenio community-stats aggregate``, for an
instance's beat schedule (``COMMUNITY_STATS_AGGREGATION_SCHEDULE``) or ``send_task``.

invenio-celery runs tasks in the Flask app context of the worker, so the aggregation reads
the instance's configuration from ``current_app``.
"""

from celery import shared_task

from .aggregation import aggregate
from .ext import TASK_NAME


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
    return aggregate(
        community_ids=community_ids or (),
        aggregation_types=aggregation_types or (),
        start_date=start_date,
        end_date=end_date,
        ignore_bookmark=ignore_bookmark,
        update_bookmark=update_bookmark,
    )
