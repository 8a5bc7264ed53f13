"""``generate-community-events``, ``community-events-status`` and
``generate-usage-events`` (each job also gets a ``-background`` twin)."""

import click

from .background import job
from .group import community_stats, echo_json, fail, run_core, search_settings, split_values, with_app


def _community_events(community_ids, record_ids, start_date, end_date, dry_run):
    from flask import current_app

    from ..config import setting

    options = {
        "community_ids": split_values(community_ids, "--community-id"),
        "record_ids": split_values(record_ids, "--record-ids"),
        "start_date": start_date,
        "end_date": end_date,
        "dry_run": dry_run,
        "batch_size": setting(current_app.config, "COMMUNITY_STATS_GENERATION_BATCH_SIZE") // 2,
    }
    return run_core("generate_community_events", options, retry=not dry_run)


_community_filters = [
    click.option(
        "-c",
        "--community-id",
        "community_ids",
        multiple=True,
        metavar="ID|SLUG",
        help="Only this community (repeatable, or comma-separated).",
    ),
    click.option(
        "--record-ids",
        "record_ids",
        multiple=True,
        metavar="ID",
        help="Only these records (repeatable, or comma-separated).",
    ),
    click.option("--start-date", metavar="YYYY-MM-DD", help="Records created on or after this day."),
    click.option("--end-date", metavar="YYYY-MM-DD", help="Records created on or before this day."),
]


def _with(options):
    def apply(f):
        for o in reversed(options):
            f = o(f)
        return f

    return apply


@job("community-event-generation")
@community_stats.command("generate-community-events")
@_with(_community_filters)
@click.option("--dry-run", is_flag=True, help="Count what would be written; write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@with_app
def generate_community_events(community_ids, record_ids, start_date, end_date, dry_run, as_json):
    """Backfill stats-community-events from the records index.

    Every published record version gets an `added` event for `global` and for each of its
    communities (with --community-id: for those communities only), dated at the record's
    creation. Re-runs write nothing twice.
    """
    report = _community_events(community_ids, record_ids, start_date, end_date, dry_run)
    if as_json:
        echo_json(report)
        _exit_if_failed(report["events_failed"], report["failure_reasons"])
        return
    verb = "would write" if dry_run else "wrote"
    click.echo(
        f"{report['records_processed']} records: {verb} {report['events_created']} community events, "
        f"{report['events_existing']} already present"
        + (
            f", {report['events_failed']} failed ({'; '.join(report['failure_reasons'])})"
            if report["events_failed"]
            else ""
        )
        + "."
    )
    if report["unreadable_publication_dates"]:
        click.echo(
            f"Warning: {report['unreadable_publication_dates']} publication dates could not be read "
            f"(record_published_date left out), e.g. {', '.join(report['unreadable_examples'])}",
            err=True,
        )
    _exit_if_failed(report["events_failed"], report["failure_reasons"])


def _exit_if_failed(failed, reasons):
    """Documents that failed for good (not back-pressure, which is retried) make the run
    fail: exit code 1, with the first reasons on stderr. Re-running writes only what is missing."""
    if failed:
        fail(f"{failed} documents failed, e.g. {reasons[0] if reasons else 'unknown'}")


@community_stats.command("community-events-status")
@_with(_community_filters)
@click.option("--community-details", is_flag=True, help="Also the missing events per community.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@with_app
def community_events_status(community_ids, record_ids, start_date, end_date, community_details, as_json):
    """Count the community events that generate-community-events would write (dry run)."""
    report = _community_events(community_ids, record_ids, start_date, end_date, True)
    if as_json:
        echo_json(report)
        return
    click.echo(
        f"{report['records_processed']} records; {report['events_created']} community events missing, "
        f"{report['events_existing']} present."
    )
    if community_details:
        missing = report["missing_by_community"]
        if missing:
            click.echo("Missing events by community:")
            for community, count in sorted(missing.items()):
                click.echo(f"  {community}: {count}")
        checked = report["communities"] or ["every community (and global)"]
        click.echo(f"Communities checked: {', '.join(checked)}")


@job("usage-event-generation")
@community_stats.command("generate-usage-events")
@click.option("--start-date", metavar="YYYY-MM-DD", help="Records created on or after this day.")
@click.option("--end-date", metavar="YYYY-MM-DD", help="Records created on or before this day.")
@click.option(
    "--event-start-date", metavar="YYYY-MM-DD", help="No event before this day (default: each record's creation)."
)
@click.option(
    "--event-end-date", metavar="YYYY-MM-DD", help="No event after this day (default: now; never in the future)."
)
@click.option(
    "--events-per-record",
    type=click.IntRange(0, 100_000),
    default=5,
    show_default=True,
    help="Views per record, and as many downloads for a record with files.",
)
@click.option(
    "--max-records",
    type=click.IntRange(0, None),
    default=0,
    show_default=True,
    help="At most this many records (0 = all).",
)
@click.option(
    "--enrich-events", is_flag=True, help="Add the v2 fields: communities as of the event's day, record metadata."
)
@click.option("--use-migrated-indices", is_flag=True, help="Write to the -v2.0.0 monthly indices.")
@click.option(
    "--seed",
    type=click.IntRange(0, 2**63 - 1),
    default=1,
    show_default=True,
    help="Random seed: the same seed gives the same documents (a re-run adds nothing).",
)
@click.option("--dry-run", is_flag=True, help="Count; write nothing.")
@click.option(
    "--yes-i-know",
    is_flag=True,
    help="Do not ask for confirmation at a terminal (synthetic events go into this instance's event indices).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@with_app
def generate_usage_events(
    start_date,
    end_date,
    event_start_date,
    event_end_date,
    events_per_record,
    max_records,
    enrich_events,
    use_migrated_indices,
    seed,
    dry_run,
    yes_i_know,
    as_json,
):
    """Generate synthetic view and download events, shaped like real InvenioRDM events.

    At a terminal it asks first (the events go into this instance's usage-event indices),
    unless --yes-i-know or --dry-run; scripts and background runs are not asked."""
    import json
    import sys

    from flask import current_app

    from ..config import setting

    if not (yes_i_know or dry_run) and sys.stdin.isatty():
        prefix = json.loads(search_settings())["index_prefix"]
        if not click.confirm(
            f"Write synthetic usage events into the event indices of prefix {prefix!r}?", default=False
        ):
            fail("nothing written")

    options = {
        "start_date": start_date,
        "end_date": end_date,
        "event_start_date": event_start_date,
        "event_end_date": event_end_date,
        "events_per_record": events_per_record,
        "max_records": max_records,
        "enrich_events": enrich_events,
        "use_migrated_indices": use_migrated_indices,
        "seed": seed,
        "dry_run": dry_run,
        "batch_size": setting(current_app.config, "COMMUNITY_STATS_GENERATION_BATCH_SIZE"),
    }
    report = run_core("generate_usage_events", options, retry=not dry_run)
    if as_json:
        echo_json(report)
        _exit_if_failed(report["failed"], report["failure_reasons"])
        return
    verb = "would write" if dry_run else "wrote"
    new = (
        report["view_events"] + report["download_events"] - report["already_present"] if dry_run else report["written"]
    )
    click.echo(
        f"{report['records_processed']} records: {report['view_events']} views and {report['download_events']} "
        f"downloads up to {report['window_end']}; {verb} {new}, {report['already_present']} already present"
        + (f", {report['failed']} failed ({'; '.join(report['failure_reasons'])})" if report["failed"] else "")
        + f" in {len(report['indices'])} monthly indices."
    )
    if report["records_with_unlisted_files"]:
        click.echo(
            f"Note: {report['records_with_unlisted_files']} records have files that the records index does not "
            "list (restricted or embargoed files are indexed without entries): no download can name them, "
            "so they got views only.",
            err=True,
        )
    _exit_if_failed(report["failed"], report["failure_reasons"])
