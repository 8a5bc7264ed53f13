"""Commands that talk to OpenSearch: ``info`` and the jobs (each job also gets a
``-background`` twin, see ``background.py``)."""

import click

from .background import job
from .group import community_stats, echo_json, run_core, with_app


@community_stats.command("info")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@with_app
def info(as_json):
    """Show the cluster, the index prefix, and what the prefix holds."""
    data = run_core("cluster_info")
    if as_json:
        echo_json(data)
        return
    click.echo(f"OpenSearch {data['version']} at {data['hosts']} (cluster {data['cluster_name']}, {data['health']})")
    click.echo(f"Index prefix: {data['index_prefix']!r}")
    if not data["indices"]:
        click.echo("No community-stats related indices under this prefix.")
    for kind, family in sorted(data["indices"].items()):
        click.echo(f"  {kind:32} {family['indices']:5} indices {family['documents']:10} documents")


def invenio_package_roots():
    """Where InvenioRDM's mapping files are looked up, in order: the configured directory,
    the source checkout's ``.cache/invenio-packages/site``, then ``sys.path`` (installed
    packages)."""
    import sys
    from pathlib import Path

    from flask import current_app

    roots = []
    configured = current_app.config.get("COMMUNITY_STATS_INVENIO_PACKAGES_DIR")
    if configured:
        roots.append(str(configured))
    checkout = Path(__file__).resolve().parents[3] / ".cache" / "invenio-packages" / "site"
    roots.append(str(checkout))
    roots.extend(p for p in sys.path if p)
    return roots


@job("sample-data-load")
@community_stats.command("load-sample-data")
@click.option("--communities", default=5, show_default=True, type=click.IntRange(0, 10_000))
@click.option("--records", default=200, show_default=True, type=click.IntRange(1, 1_000_000))
@click.option("--events-per-record", default=20, show_default=True, type=click.IntRange(0, 100_000))
@click.option("--months", default=12, show_default=True, type=click.IntRange(1, 120))
@click.option("--end-date", default=None, metavar="YYYY-MM-DD", help="Last day of the sample (default today).")
@click.option("--seed", default=42, show_default=True, type=int)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@with_app
def load_sample_data(communities, records, events_per_record, months, end_date, seed, as_json):
    """Load a small InvenioRDM instance's worth of data (communities, records, legacy usage
    events), under the mappings InvenioRDM ships and in the shapes a real instance holds.

    Only for an empty index prefix: refuses to write if the records index exists. Needs
    InvenioRDM's mapping files: installed packages, or COMMUNITY_STATS_INVENIO_PACKAGES_DIR
    (scripts/fetch-invenio-packages makes one).
    """
    options = {
        "communities": communities,
        "records": records,
        "events_per_record": events_per_record,
        "months": months,
        "end_date": end_date,
        "seed": seed,
        "package_roots": invenio_package_roots(),
    }
    report = run_core("load_sample_data", options, retry=True)
    if as_json:
        echo_json(report)
        return
    click.echo(
        f"Loaded {report['communities']} communities, {report['records']} records "
        f"({report['deleted_records']} deleted), {report['view_events']} view and "
        f"{report['download_events']} download events in {len(report['event_indices'])} monthly indices "
        f"(prefix {report['index_prefix']!r})."
    )
