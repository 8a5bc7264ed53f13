"""``aggregate`` (+ ``aggregate-background``), ``read`` and ``clear-lock``."""

import click

from ..aggregation import AGGREGATION_TYPES, READ_TYPES
from .background import job
from .group import community_stats, echo_json, fail, run_core, search_settings, split_values, with_app


def _print_report(report):
    late = report.get("late_enrichment") or {}
    if late.get("events_enriched"):
        click.echo(
            f"Enriched {late['events_enriched']} events written since the migration "
            f"({late['records_missing']} of unknown records) in {late['indices']} indices."
        )
    for agg in report["aggregators"]:
        click.echo(
            f"{agg['aggregator']}: {agg['documents']} documents, {agg['errors']} errors, "
            f"{agg['duration_seconds']:.1f} s"
        )
        for c in agg["communities"]:
            days = f"{c['first_day']}..{c['last_day']}" if c["days_written"] else "no days"
            line = f"  {c['community_id']}: {days} ({c['days_written']} days, {c['documents']} documents"
            line += f", {c['errors']} errors: {'; '.join(c['error_details'][:3])})" if c["errors"] else ")"
            if c["note"]:
                line += f" - {c['note']}"
            click.echo(line)
    click.echo(
        f"{report['documents']} documents, {report['errors']} errors, {report['searches']} searches, "
        f"{report['duration_seconds']:.1f} s."
    )
    for what in report["incomplete"]:
        click.echo(
            f"Warning: {what} stopped at the catch-up limit (COMMUNITY_STATS_CATCHUP_DAYS); run again to continue.",
            err=True,
        )


@job("aggregation")
@community_stats.command("aggregate")
@click.option(
    "--community-id",
    "community_ids",
    multiple=True,
    metavar="ID|SLUG|global",
    help="Only this community (repeatable or comma-separated; 'global' for the whole repository). "
    "Default: every opted-in community, and global.",
)
@click.option(
    "--aggregation-type",
    "aggregation_types",
    multiple=True,
    type=click.Choice(AGGREGATION_TYPES),
    help="Only this aggregator (repeatable). Default: all, in order.",
)
@click.option("--start-date", metavar="YYYY-MM-DD", help="First day to aggregate; given, it wins over the bookmark.")
@click.option("--end-date", metavar="YYYY-MM-DD", help="Last day to aggregate (default: today, UTC).")
@click.option(
    "--ignore-bookmark", is_flag=True, help="Without --start-date, start at the first event instead of the bookmark."
)
@click.option(
    "--update-bookmark/--no-update-bookmark",
    default=True,
    show_default=True,
    help="Move the bookmarks forward after the run.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON document.")
@with_app
def aggregate(community_ids, aggregation_types, start_date, end_date, ignore_bookmark, update_bookmark, as_json):
    """Aggregate daily usage deltas and cumulative usage snapshots per community.

    One document per community and UTC day. Each (aggregator, community) resumes from its
    bookmark (the last day done, which is redone: today grows during the day), at most
    COMMUNITY_STATS_CATCHUP_DAYS days per run. Two runs never overlap (a lock in OpenSearch).
    """
    from flask import current_app

    from ..aggregation import aggregate as run

    report = run(
        community_ids=split_values(community_ids, "--community-id"),
        aggregation_types=aggregation_types,
        start_date=start_date,
        end_date=end_date,
        ignore_bookmark=ignore_bookmark,
        update_bookmark=update_bookmark,
        settings_json=search_settings(retry=True),
        config=current_app.config,
    )
    if as_json:
        echo_json(report)
    else:
        _print_report(report)
    if report["errors"]:
        fail(
            f"{report['errors']} errors (see the report); the bookmarks of the failed communities "
            "were not moved past the failure, a re-run retries them."
        )


@community_stats.command("read")
@click.option("--community-id", default="global", show_default=True, metavar="ID|SLUG|global", help="The community.")
@click.option("--start-date", metavar="YYYY-MM-DD", help="First day (default: yesterday).")
@click.option("--end-date", metavar="YYYY-MM-DD", help="Last day (default: today).")
@click.option(
    "--query-type",
    "query_types",
    multiple=True,
    type=click.Choice(READ_TYPES),
    help="Only these documents (repeatable). Default: all kinds.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document (all documents in full).")
@with_app
def read(community_id, start_date, end_date, query_types, as_json):
    """Print a community's aggregation documents over a date range, in date order."""
    options = {
        "community_id": community_id,
        "start_date": start_date,
        "end_date": end_date,
        "query_types": list(query_types),
    }
    result = run_core("read_aggregations", options)
    if as_json:
        echo_json(result)
        return
    click.echo(f"{result['community_id']} {result['start_date']}..{result['end_date']}")
    for key, docs in result.items():
        if not isinstance(docs, list):
            continue
        click.echo(f"{key}: {len(docs)} documents")
        for d in docs:
            day = (d.get("period_start") or d.get("snapshot_date") or "")[:10]
            totals = d.get("totals", {})
            if "view" in totals:
                click.echo(
                    f"  {day}  views {totals['view'].get('total_events', 0)}  "
                    f"downloads {totals['download'].get('total_events', 0)}"
                )
            else:
                click.echo(f"  {day}")


@community_stats.command("clear-lock")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@with_app
def clear_lock(as_json):
    """Remove the aggregation lock (left by a crashed run; a live run's lock is renewed)."""
    result = run_core("clear_aggregation_lock")
    if as_json:
        echo_json(result)
    elif result["removed"]:
        lock = result["lock"]
        click.echo(f"Removed the aggregation lock held by {lock.get('owner')} since {lock.get('acquired')}.")
    else:
        click.echo("No aggregation lock was held.")


_select = [
    click.option(
        "--community-id",
        "community_ids",
        multiple=True,
        metavar="ID|SLUG|global",
        help="Only this community (repeatable or comma-separated; 'global' works).",
    ),
    click.option(
        "--aggregation-type",
        "aggregation_types",
        multiple=True,
        type=click.Choice(AGGREGATION_TYPES),
        help="Only this aggregator (repeatable).",
    ),
]


def _with(options):
    def apply(f):
        for o in reversed(options):
            f = o(f)
        return f

    return apply


@community_stats.command("status")
@_with(_select)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@with_app
def status(community_ids, aggregation_types, as_json):
    """Per community (every one, and global) and aggregator: bookmark, documents, first and
    last day, completeness (documents / days between them) and days behind today."""
    options = {
        "community_ids": split_values(community_ids, "--community-id"),
        "aggregation_types": list(aggregation_types),
        "all": False,
    }
    rows = run_core("aggregation_status", options)
    if as_json:
        echo_json(rows)
        return
    click.echo(
        f"{'community':38} {'aggregator':38} {'bookmark':10} {'docs':>6} {'first':10} {'last':10} "
        f"{'complete':>8} {'behind':>6}"
    )
    for r in rows:
        complete = f"{r['completeness'] * 100:.0f}%" if r["completeness"] is not None else "-"
        behind = str(r["days_behind"]) if r["days_behind"] is not None else "-"
        click.echo(
            f"{r['community_id']:38} {r['aggregator']:38} {r['bookmark'] or '-':10} {r['documents']:>6} "
            f"{r['first_day'] or '-':10} {r['last_day'] or '-':10} {complete:>8} {behind:>6}"
        )


@community_stats.command("clear-bookmarks")
@_with(_select)
@click.option("--all", "all_", is_flag=True, help="Every bookmark (of the selected aggregators).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@with_app
def clear_bookmarks(community_ids, aggregation_types, all_, as_json):
    """Delete aggregation bookmarks: the next run starts at the first event (or --start-date)."""
    options = {
        "community_ids": split_values(community_ids, "--community-id"),
        "aggregation_types": list(aggregation_types),
        "all": all_,
    }
    deleted = run_core("clear_bookmarks", options)
    if as_json:
        echo_json({"deleted": deleted})
    else:
        click.echo(f"Deleted {deleted} bookmarks.")


@community_stats.command("destroy-indices")
@click.option("--yes-i-know", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--include-community-events",
    is_flag=True,
    help="Also delete stats-community-events-* (rebuilt by generate-community-events).",
)
@click.option("--dry-run", is_flag=True, help="List what would be deleted; delete nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@with_app
def destroy_indices(yes_i_know, include_community_events, dry_run, as_json):
    """Delete the aggregation indices of this index prefix only (deltas, snapshots,
    bookmarks, saved states, the lock). Usage events, migrated or not, are never deleted."""
    listed = run_core("destroy_indices", {"include_community_events": include_community_events, "dry_run": True})
    if dry_run or not listed:
        if as_json:
            echo_json({"deleted": [], "would_delete": [n for n, _ in listed]})
        else:
            click.echo(f"{'Would delete' if listed else 'Nothing to delete'}" + (":" if listed else "."))
            for name, docs in listed:
                click.echo(f"  {name} ({docs} documents)")
        return
    if not yes_i_know:
        click.echo("This deletes:")
        for name, docs in listed:
            click.echo(f"  {name} ({docs} documents)")
        if not click.confirm("Delete these indices?", default=False):
            raise click.ClickException("nothing deleted")
    deleted = run_core("destroy_indices", {"include_community_events": include_community_events, "dry_run": False})
    if as_json:
        echo_json({"deleted": [n for n, _ in deleted]})
    else:
        click.echo(f"Deleted {len(deleted)} indices.")
