"""``enable-dashboards``: turns on the communities' dashboard flag
(``custom_fields["stats:dashboard_enabled"]``, what ``COMMUNITY_STATS_OPT_IN`` reads)."""

import click

from .group import community_stats, echo_json, fail, run_core, split_values, with_app

#: The custom field the aggregation's opt-in reads (``invenio_packages.rs``' DASHBOARD_FLAG).
DASHBOARD_FLAG = "stats:dashboard_enabled"


def _set_flags(ids):
    """Sets the flag of each community through invenio-communities' service (so the database,
    the index and the service's own checks agree); returns ``(enabled, failed)``."""
    from flask import current_app

    if current_app.extensions.get("invenio-communities") is None:
        fail(
            "enable-dashboards sets the flag through invenio-communities' service, which this app does not have: "
            "run it as 'invenio community-stats enable-dashboards' in the instance (or add --dry-run to list "
            "the communities)",
            exit_code=2,
        )
    from invenio_access.permissions import system_identity
    from invenio_communities.proxies import current_communities

    service = current_communities.service
    enabled, failed = [], []
    for community_id in ids:
        try:
            data = service.read(system_identity, community_id).to_dict()
            data.setdefault("custom_fields", {})[DASHBOARD_FLAG] = True
            service.update(system_identity, community_id, data)
            enabled.append(community_id)
        except Exception as exc:  # noqa: BLE001 - reported per community, the others go on
            failed.append({"id": community_id, "error": " ".join(str(exc).split())})
    return enabled, failed


@community_stats.command("enable-dashboards")
@click.argument("community_ids", nargs=-1, metavar="[ID|SLUG]...")
@click.option("--first-active", metavar="YYYY-MM-DD", help="Communities whose first record was added by this day.")
@click.option("--active-since", metavar="YYYY-MM-DD", help="Communities with a record added or removed since this day.")
@click.option(
    "--record-threshold",
    type=click.IntRange(0, None),
    default=0,
    show_default=True,
    help="Communities with at least this many community events.",
)
@click.option("--dry-run", is_flag=True, help="List the communities; change nothing.")
@click.option("-v", "--verbose", is_flag=True, help="List every community enabled or failed.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@with_app
def enable_dashboards(community_ids, first_active, active_since, record_threshold, dry_run, verbose, as_json):
    """Turn on the dashboards (and so the aggregation, with COMMUNITY_STATS_OPT_IN) of the
    communities named, or of those the filters select from their community events."""
    named = split_values(community_ids, "COMMUNITY_IDS")
    if not (named or first_active or active_since or record_threshold):
        fail("name communities, or select them with --first-active, --active-since or --record-threshold", 2)
    options = {
        "community_ids": named,
        "first_active": first_active,
        "active_since": active_since,
        "record_threshold": record_threshold,
    }
    if named and (first_active or active_since or record_threshold):
        click.echo("Note: communities are named, so the filters are not used.", err=True)
    candidates = run_core("dashboard_candidates", options)
    todo = [c["id"] for c in candidates if not c["enabled"]]
    if dry_run:
        if as_json:
            echo_json({"would_enable": todo, "communities": candidates})
            return
        for c in candidates:
            state = "already enabled" if c["enabled"] else "would enable"
            click.echo(f"{c['id']} ({c['slug'] or '-'}): {state}, {c['events']} community events")
        click.echo(f"{len(todo)} of {len(candidates)} communities would be enabled.")
        return
    enabled, failed = _set_flags(todo) if todo else ([], [])
    if as_json:
        echo_json({"enabled": enabled, "already_enabled": len(candidates) - len(todo), "failed": failed})
    else:
        if verbose:
            for c in enabled:
                click.echo(f"enabled {c}")
            for f in failed:
                click.echo(f"failed  {f['id']}: {f['error']}")
        click.echo(
            f"Enabled dashboards for {len(enabled)} communities ({len(candidates) - len(todo)} already enabled)."
        )
    if failed:
        fail(f"{len(failed)} communities could not be updated, e.g. {failed[0]['id']}: {failed[0]['error']}")
