"""``migrate-events`` (+ ``-background``), ``migrate-month`` and ``migration-status``."""

import click

from .background import job
from .group import community_stats, core, echo_json, search_settings, split_values, with_app



def _copy_options(f):
    for decorator in reversed([
        click.option("--event-types", "event_types", multiple=True, metavar="view|download",
                     help="Event types (repeatable or comma-separated; default both)."),
        click.option("--batch-size", type=click.IntRange(1, 10_000), default=1000, show_default=True,
                     help="Events per batch (a checkpoint after each)."),
        click.option("--slices", type=click.IntRange(1, 16), default=2, show_default=True,
                     help="Point-in-time slices read in parallel per month (a month resumes with the slices it began with)."),
        click.option("--max-batches", type=click.IntRange(0, None), default=0, show_default=True,
                     help="At most this many batches per month in this run (0 = no limit)."),
        click.option("--max-memory-percent", type=click.FloatRange(1, 100), default=85.0, show_default=True,
                     help="Stop cleanly, checkpointed, when system memory use passes this."),
        click.option("--delete-old-indices", is_flag=True, help="Delete a legacy index once its month is verified and switched."),
        click.option("--fresh-start", is_flag=True, help="Forget the checkpoints of the selected months."),
        click.option("--dry-run", is_flag=True, help="Show the plan and counts; change nothing."),
        click.option("--json", "as_json", is_flag=True, help="Print one JSON document."),
    ]):
        f = decorator(f)
    return f


def _run(months, event_types, batch_size, slices, max_batches, max_memory_percent, delete_old_indices, fresh_start, dry_run, as_json):
    import json

    options = {
        "event_types": split_values(event_types),
        "months": months,
        "batch_size": batch_size,
        "slices": slices,
        "max_batches": max_batches,
        "max_memory_percent": max_memory_percent,
        "delete_old_indices": delete_old_indices,
        "fresh_start": fresh_start,
        "dry_run": dry_run,
    }
    report = json.loads(core().migrate_events(search_settings(retry=not dry_run), json.dumps(options)))
    if as_json:
        echo_json(report)
    else:
        for m in report["months"]:
            note = f" — {m['message']}" if m.get("message") else ""
            click.echo(
                f"{m['event_type']:8} {m['month']}  {m['state']:11} {m['target_count']:>10} / {m['source_count']:<10}"
                f"{' switched' if m['switched'] else ''}{' source deleted' if m['source_deleted'] else ''}{note}"
            )
        click.echo(
            f"{report['done']} month(s) done, {report['interrupted']} interrupted (resumable), {report['failed']} failed; "
            f"{report['written']} documents written{' (dry run)' if dry_run else ''}."
        )
    if report["failed"]:
        raise click.exceptions.Exit(1)


@job("event-migration")
@community_stats.command("migrate-events")
@click.option("--months", metavar="YYYY-MM[:YYYY-MM]", help="Only these months (default: every legacy monthly index).")
@_copy_options
@with_app
def migrate_events(months, **options):
    """Copy legacy monthly usage-event indices into enriched -v2.0.0 indices.

    Each month is checkpointed after every acknowledged batch (a re-run resumes), verified
    (counts, and a sample compared field by field), then switched in the read alias with one
    atomic request. Old indices are deleted only with --delete-old-indices, after that.
    """
    _run(months, **options)


@community_stats.command("migrate-month")
@click.argument("month", metavar="YYYY-MM")
@_copy_options
@with_app
def migrate_month(month, **options):
    """Migrate one month (same as migrate-events --months YYYY-MM)."""
    _run(month, **options)


@community_stats.command("migration-status")
@click.option("--months", metavar="YYYY-MM[:YYYY-MM]", help="Only these months.")
@click.option("--event-types", "event_types", multiple=True, metavar="view|download", help="Event types.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@with_app
def migration_status(months, event_types, as_json):
    """Per month and event type: source count, migrated, checkpoint, state, read alias."""
    import json

    options = {"event_types": split_values(event_types), "months": months}
    rows = json.loads(core().migration_status(search_settings(), json.dumps(options)))
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("No legacy or migrated event indices found.")
        return
    click.echo(f"{'TYPE':8} {'MONTH':7}  {'STATE':11} {'SOURCE':>10} {'MIGRATED':>10}  {'ALIAS':6}  CHECKPOINT")
    for r in rows:
        src = "deleted" if r["source_count"] is None else r["source_count"]
        click.echo(f"{r['event_type']:8} {r['month']}  {r['state']:11} {src:>10} {r['migrated']:>10}  {r['read_alias']:6}  {r['checkpoint'] or '-'}"
                   + (f"  ({r['error']})" if r.get("error") else ""))
