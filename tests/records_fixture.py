"""Records and communities written directly (independently of the code under test) under
InvenioRDM's own mappings (see ``invenio_rdm``), so that tests can compute expected figures
from what they wrote; and documents checked under the reference implementation's mappings."""

import json

import reference_facts
from invenio_rdm import record, write  # noqa: F401  (the tests import them from here)


def reindex_under_reference_mapping(search, source_pattern, template_name, target):
    """Copies every document of ``source_pattern`` into ``target``, an index created with the
    reference's strict mapping; returns the bulk errors (none expected)."""
    search.ok("PUT", target, {"mappings": reference_facts.mappings(template_name), "settings": {"number_of_replicas": 0}})
    hits = search.search_all(source_pattern)
    assert hits, f"nothing in {source_pattern}"
    lines = []
    for h in hits:
        lines.append(json.dumps({"index": {"_index": target, "_id": h["_id"]}}))
        lines.append(json.dumps(h["_source"]))
    import urllib.request

    req = urllib.request.Request(f"{search.url}/_bulk?refresh=true", data=("\n".join(lines) + "\n").encode(),
                                 method="POST", headers={"Content-Type": "application/x-ndjson"})
    with urllib.request.urlopen(req) as resp:
        reply = json.loads(resp.read())
    errors = [i for i in reply["items"] if "error" in next(iter(i.values()))]
    return errors, len(hits)
