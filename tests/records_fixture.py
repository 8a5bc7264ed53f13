"""Records and communities written directly (independently of the code under test) under
InvenioRDM's own mappings (see ``invenio_rdm``), so that tests can compute expected figures
from what they wrote; and documents checked under the reference implementation's mappings."""

import invenio_rdm
import reference_facts
from invenio_rdm import record, write  # noqa: F401  (the tests import them from here)


def reindex_under_reference_mapping(search, source_pattern, template_name, target):
    """Copies every document of ``source_pattern`` into ``target``, an index created with the
    reference's strict mapping; returns the bulk errors (none expected)."""
    search.ok(
        "PUT", target, {"mappings": reference_facts.mappings(template_name), "settings": {"number_of_replicas": 0}}
    )
    hits = search.search_all(source_pattern)
    assert hits, f"nothing in {source_pattern}"
    return invenio_rdm.bulk(search, [(target, h["_id"], h["_source"]) for h in hits], check=False), len(hits)
