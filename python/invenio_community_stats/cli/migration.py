"""``migrate-events`` (+ ``-background``), ``migrate-month`` and ``migration-status``."""

import click

from .background import job
from .group import FiniteFloat, community_stats, echo_json, fail, run_core, split_values, with_app


def _copy_options(f):
    for decorator in reversed(
        [
            click.option(
                "-e",
                "--event-types",
                "event_types",
                multiple=True,
                metavar="view|download",
                help="Event types (repeatable or comma-separated; default both).",
            ),
            click.option(
                "--batch-size",
                type=click.IntRange(1, 10_000),
                default=None,
                help="Events per batch (a checkpoint every few). [default: COMMUNITY_STATS_MIGRATION_BATCH_SIZE]",
            ),
            click.option(
                "--slices",
                type=click.IntRange(1, 16),
                default=None,
                help="Point-in-time slices read in parallel, shared by the months migrated at the same time "
                "(a month resumes with the slices it began with). [default: COMMUNITY_STATS_MIGRATION_SLICES]",
            ),
            click.option(
                "--parallel-months",
                type=click.IntRange(1, 8),
                default=None,
                help="Closed months migrated at the same time (live months come after them, one at a time). "
                "[default: COMMUNITY_STATS_MIGRATION_PARALLEL_MONTHS]",
            ),
            click.option(
                "-b",
                "--max-batches",
                type=click.IntRange(0, None),
                default=0,
                show_default=True,
                help="At most this many batches per month in this run (0 = no limit).",
            ),
            click.option(
                "--max-memory-percent",
                type=FiniteFloat(1, 100),
                default=None,
                help="Stop cleanly, checkpointed, when system memory use passes this. "
                "[default: COMMUNITY_STATS_MIGRATION_MAX_MEMORY_PERCENT]",
            ),
            click.option(
                "--delete-old-indices",
                is_flag=True,
                help="Delete a legacy index once its month is verified and switched.",
            ),
            click.option("--fresh-start", is_flag=True, help="Forget the checkpoints of the selected months."),
            click.option("--dry-run", is_flag=True, help="Show the plan and counts; change nothing."),
            click.option("--json", "as_json", is_flag=True, help="Print one JSON document."),
        ]
    ):
        f = decorator(f)
    return f


def _run(
    months,
    event_types,
    batch_size,
    slices,
    parallel_months,
    max_batches,
    max_memory_percent,
    delete_old_indices,
    fresh_start,
    dry_run,
    as_json,
):
    from flask import current_app

    from ..config import setting

    config = current_app.config

    def given(value, key):
        return setting(config, key) if value is None else value

    options = {
        "event_types": split_values(event_types, "--event-types"),
        "months": split_values(months, "--months"),
        "batch_size": given(batch_size, "COMMUNITY_STATS_MIGRATION_BATCH_SIZE"),
        "slices": given(slices, "COMMUNITY_STATS_MIGRATION_SLICES"),
        "parallel_months": given(parallel_months, "COMMUNITY_STATS_MIGRATION_PARALLEL_MONTHS"),
        "max_batches": max_batches,
        "max_memory_percent": given(max_memory_percent, "COMMUNITY_STATS_MIGRATION_MAX_MEMORY_PERCENT"),
        "delete_old_indices": delete_old_indices,
        "fresh_start": fresh_start,
        "dry_run": dry_run,
        "verify_sample": setting(config, "COMMUNITY_STATS_MIGRATION_VERIFY_SAMPLE"),
        "lock_ttl_seconds": setting(config, "COMMUNITY_STATS_MIGRATION_LOCK_TTL"),
    }
    report = run_core("migrate_events", options, retry=not dry_run)
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
            f"{report['done']} month(s) done, {report['interrupted']} interrupted (resumable), "
            f"{report['failed']} failed; "
            f"{report['written']} documents written{' (dry run)' if dry_run else ''}."
        )
    if report["failed"]:
        failed = [m for m in report["months"] if m["state"] == "failed"]
        fail(
            f"{report['failed']} month(s) failed, e.g. {failed[0]['event_type']} {failed[0]['month']}: "
            f"{failed[0].get('message') or 'see the report'}"
            if failed
            else f"{report['failed']} month(s) failed"
        )


#: ``-m/--months``: repeatable, each a month or a range (the reference's spelling).
MONTHS_HELP = "Only these months: YYYY-MM or YYYY-MM:YYYY-MM, repeatable or comma-separated"


@job("event-migration")
@community_stats.command("migrate-events")
@click.option(
    "-m",
    "--months",
    multiple=True,
    metavar="YYYY-MM[:YYYY-MM]",
    help=MONTHS_HELP + " (default: every legacy monthly index).",
)
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
    _run((month,), **options)


@community_stats.command("migration-status")
@click.option("-m", "--months", multiple=True, metavar="YYYY-MM[:YYYY-MM]", help=MONTHS_HELP + ".")
@click.option("-e", "--event-types", "event_types", multiple=True, metavar="view|download", help="Event types.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@with_app
def migration_status(months, event_types, as_json):
    """Per month and event type: source count, migrated, checkpoint, state, read alias."""
    selection = {
        "event_types": split_values(event_types, "--event-types"),
        "months": split_values(months, "--months"),
    }
    rows = run_core("migration_status", selection)
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("No legacy or migrated event indices found.")
        return
    click.echo(f"{'TYPE':8} {'MONTH':7}  {'STATE':11} {'SOURCE':>10} {'MIGRATED':>10}  {'ALIAS':6}  CHECKPOINT")
    for r in rows:
        src = "deleted" if r["source_count"] is None else r["source_count"]
        click.echo(
            f"{r['event_type']:8} {r['month']}  {r['state']:11} {src:>10} {r['migrated']:>10}  "
            f"{r['read_alias']:6}  {r['checkpoint'] or '-'}" + (f"  ({r['error']})" if r.get("error") else "")
        )


@community_stats.command("clear-migration-checkpoints")
@click.option(
    "-e", "--event-types", "--event-type", "event_types", multiple=True, metavar="view|download", help="Event types."
)
@click.option("-m", "--months", "--month", "months", multiple=True, metavar="YYYY-MM[:YYYY-MM]", help=MONTHS_HELP + ".")
@click.option("--yes-i-know", "--confirm", "yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@with_app
def clear_migration_checkpoints(event_types, months, yes, as_json):
    """Forget the migration state of the selected months (default: all): the next
    migrate-events copies them again from the start, writing nothing twice. Refused while a
    migration runs; a month in the middle of its switchover, or whose legacy index is gone,
    is left alone."""
    import sys

    selection = {
        "event_types": split_values(event_types, "--event-types"),
        "months": split_values(months, "--months"),
    }
    if not yes and sys.stdin.isatty():
        what = ", ".join(selection["months"]) or "every month"
        if not click.confirm(f"Forget the migration checkpoints of {what}?", default=False):
            fail("nothing cleared")
    result = run_core("clear_migration_checkpoints", selection)
    if as_json:
        echo_json(result)
        return
    for row in result["cleared"]:
        click.echo(f"cleared  {row['event_type']:8} {row['month']}  (was {row['state_before']})")
    for row in result["skipped"]:
        click.echo(f"skipped  {row['event_type']:8} {row['month']}  {row['reason']}")
    click.echo(f"{len(result['cleared'])} month(s) cleared, {len(result['skipped'])} left alone.")
