"""``aggregate`` (+ ``aggregate-background``), ``read`` and ``clear-lock``."""

import click

from ..aggregation import (
    AGGREGATION_TYPES,
    READ_TYPES,
    REFERENCE_READ_TYPES,
    UNSUPPORTED_AGGREGATION_TYPES,
    UNSUPPORTED_READ_TYPES,
)
from .background import job
from .group import AliasChoice, community_stats, echo_json, fail, run_core, search_settings, split_values, with_app

#: ``--aggregation-type``: ours (the reference's names are the same), the reference's
#: date-created and date-published aggregators refused with the one to use.
AGGREGATOR_CHOICE = AliasChoice(AGGREGATION_TYPES, refused=UNSUPPORTED_AGGREGATION_TYPES)


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
    "-c",
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
    type=AGGREGATOR_CHOICE,
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
@click.option(
    "--eager/--no-eager",
    default=True,
    help="Run here (default), or --no-eager: on the instance's Celery workers, waiting for the report.",
)
@click.option(
    "--force",
    is_flag=True,
    hidden=True,
    help="The reference's override of its scheduled-tasks switch; aggregate always runs here.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON document.")
@with_app
def aggregate(
    community_ids, aggregation_types, start_date, end_date, ignore_bookmark, update_bookmark, eager, force, as_json
):
    """Aggregate daily usage deltas and cumulative usage snapshots per community.

    One document per community and UTC day. Each (aggregator, community) resumes from its
    bookmark (the last day done, which is redone: today grows during the day), at most
    COMMUNITY_STATS_CATCHUP_DAYS days per run. Two runs never overlap (a lock in OpenSearch).
    """
    from flask import current_app

    from ..aggregation import aggregate as run

    given = {
        "community_ids": split_values(community_ids, "--community-id"),
        "aggregation_types": list(aggregation_types),
        "start_date": start_date,
        "end_date": end_date,
        "ignore_bookmark": ignore_bookmark,
        "update_bookmark": update_bookmark,
    }
    if eager:
        report = run(**given, settings_json=search_settings(retry=True), config=current_app.config)
    else:
        report = _on_celery_workers(given)
    if as_json:
        echo_json(report)
    else:
        _print_report(report)
    if report["errors"]:
        fail(
            f"{report['errors']} errors (see the report); the bookmarks of the failed communities "
            "were not moved past the failure, a re-run retries them."
        )


def _on_celery_workers(given):
    """``aggregate --no-eager``: the aggregation task, sent to the instance's Celery workers;
    waits for and returns its report."""
    from flask import current_app

    from .. import _bridge

    if current_app.extensions.get("invenio-celery") is None:
        fail(
            "--no-eager sends the aggregation to the instance's Celery workers, and this app has no Celery "
            "(invenio-celery): run it here (without --no-eager) or detached with aggregate-background",
            exit_code=2,
        )
    from ..aggregation import options_from_config

    _bridge.validate("aggregate", options_from_config(current_app.config, **given))
    from ..tasks import aggregate_community_stats

    result = aggregate_community_stats.apply_async(kwargs=given)
    click.echo(f"Sent to the Celery workers as task {result.id}; waiting for its report.", err=True)
    return result.get()


@community_stats.command("read")
@click.option(
    "-c", "--community-id", default="global", show_default=True, metavar="ID|SLUG|global", help="The community."
)
@click.option("--start-date", metavar="YYYY-MM-DD", help="First day (default: yesterday).")
@click.option("--end-date", metavar="YYYY-MM-DD", help="Last day (default: today).")
@click.option(
    "--query-type",
    "query_types",
    multiple=True,
    type=AliasChoice(READ_TYPES, REFERENCE_READ_TYPES, UNSUPPORTED_READ_TYPES),
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
            click.echo(f"  {day}  {_figures(d)}".rstrip())


def _size(n):
    """Bytes for people: 1.2 MB."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000


def _figures(d):
    """The headline figures of one aggregation document (usage or records, delta or snapshot)."""
    totals = d.get("totals", {})
    if "view" in totals:
        return f"views {totals['view'].get('total_events', 0)}  downloads {totals['download'].get('total_events', 0)}"
    if "total_records" in d:
        r, f = d["total_records"], d.get("total_files", {})
        return (
            f"records {r.get('metadata_only', 0) + r.get('with_files', 0)} (with files {r.get('with_files', 0)})  "
            f"parents {sum(d.get('total_parents', {}).values())}  files {f.get('file_count', 0)} "
            f"({_size(f.get('data_volume', 0))})  uploaders {d.get('total_uploaders', 0)}"
        )
    if "records" in d:

        def change(kind):
            side = d[kind]
            return sum(side["added"].values()), sum(side["removed"].values())

        added, removed = change("records")
        files = d.get("files", {"added": {}, "removed": {}})
        return (
            f"records +{added} -{removed} (with files +{d['records']['added'].get('with_files', 0)})  "
            f"parents +{change('parents')[0]} -{change('parents')[1]}  "
            f"files +{files['added'].get('file_count', 0)} -{files['removed'].get('file_count', 0)} "
            f"({_size(files['added'].get('data_volume', 0) - files['removed'].get('data_volume', 0))})  "
            f"uploaders {d.get('uploaders', 0)}"
        )
    return ""


@community_stats.command("clear-lock")
@click.option(
    "--lock-name",
    default="aggregation",
    show_default=True,
    metavar="aggregation|migration",
    help="The lock to remove (the reference's community_stats_aggregation is the aggregation lock).",
)
@click.option("--list-locks", is_flag=True, help="List the locks and their holders; remove nothing.")
@click.option("--dry-run", is_flag=True, help="Show what would be removed; remove nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@with_app
def clear_lock(lock_name, list_locks, dry_run, as_json):
    """Remove a lock left by a crashed run (aggregation or migration; a live run renews its
    lock, and a dead holder's lock on this host is taken over by the next run anyway)."""
    result = run_core("clear_lock", {"lock_name": lock_name, "list_locks": list_locks, "dry_run": dry_run})
    if as_json:
        echo_json(result)
        return
    if list_locks:
        for row in result["locks"]:
            lock = row["lock"]
            held = f"held by {lock.get('owner')} since {lock.get('acquired')}" if lock else "free"
            click.echo(f"{row['name']:12} {held}{' (expired)' if lock and not row['live'] else ''}")
        return
    lock, name = result.get("lock"), result["name"]
    if dry_run:
        click.echo(
            f"Would remove the {name} lock held by {lock.get('owner')} since {lock.get('acquired')}."
            if lock
            else f"No {name} lock is held: nothing to remove."
        )
    elif result["removed"]:
        click.echo(f"Removed the {name} lock held by {lock.get('owner')} since {lock.get('acquired')}.")
    else:
        click.echo(f"No {name} lock was held.")


_select = [
    click.option(
        "-c",
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
        type=AGGREGATOR_CHOICE,
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
@click.option("-v", "--verbose", is_flag=True, help="A block per community and aggregator instead of a table.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@with_app
def status(community_ids, aggregation_types, verbose, as_json):
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
    if verbose:
        for r in rows:
            click.echo(f"{r['community_id']}{' (' + r['slug'] + ')' if r.get('slug') else ''} — {r['aggregator']}")
            for label, key in [
                ("Bookmark", "bookmark"),
                ("Documents", "documents"),
                ("First day", "first_day"),
                ("Last day", "last_day"),
                ("Days behind", "days_behind"),
            ]:
                click.echo(f"  {label + ':':13} {r[key] if r[key] is not None else '-'}")
            complete = f"{r['completeness'] * 100:.1f}%" if r["completeness"] is not None else "-"
            click.echo(f"  {'Complete:':13} {complete}")
        return
    click.echo(
        f"{'community':38} {'slug':24} {'aggregator':38} {'bookmark':10} {'docs':>6} {'first':10} {'last':10} "
        f"{'complete':>8} {'behind':>6}"
    )
    for r in rows:
        complete = f"{r['completeness'] * 100:.0f}%" if r["completeness"] is not None else "-"
        behind = str(r["days_behind"]) if r["days_behind"] is not None else "-"
        click.echo(
            f"{r['community_id']:38} {r.get('slug') or '-':24} {r['aggregator']:38} {r['bookmark'] or '-':10} "
            f"{r['documents']:>6} "
            f"{r['first_day'] or '-':10} {r['last_day'] or '-':10} {complete:>8} {behind:>6}"
        )


@community_stats.command("clear-bookmarks")
@_with(_select)
@click.option("--all", "--all-communities", "all_", is_flag=True, help="Every community (of the selected aggregators).")
@click.option(
    "--all-aggregation-types", is_flag=True, help="Every aggregator (the default); alone, of every community."
)
@click.option("--yes-i-know", "--confirm", "yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@with_app
def clear_bookmarks(community_ids, aggregation_types, all_, all_aggregation_types, yes, as_json):
    """Delete aggregation bookmarks: the next run starts at the first event (or --start-date)."""
    import sys

    communities = split_values(community_ids, "--community-id")
    if all_ and communities:
        fail("give --community-id or --all-communities, not both", exit_code=2)
    options = {
        "community_ids": communities,
        "aggregation_types": list(aggregation_types),
        # --all-aggregation-types alone means every bookmark, as in the reference.
        "all": all_ or (all_aggregation_types and not communities),
    }
    if not yes and sys.stdin.isatty():
        scope = ", ".join(communities) if communities else "every community"
        if not click.confirm(f"Delete the aggregation bookmarks of {scope}?", default=False):
            fail("nothing deleted")
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
