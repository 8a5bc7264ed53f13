"""Writing InvenioRDM-shaped records and communities directly (independently of the code
under test), so that tests can compute expected figures from what they wrote."""

import json

KW = {"type": "keyword"}
RECORDS_MAPPING = {
    "dynamic": True,
    "properties": {
        "id": KW, "created": {"type": "date"}, "is_published": {"type": "boolean"},
        "is_deleted": {"type": "boolean"}, "deletion_status": KW, "bucket_id": KW,
        "parent": {"properties": {"id": KW, "communities": {"properties": {"ids": KW}}}},
        "tombstone": {"properties": {"removal_date": {"type": "date"}}},
        "metadata": {"properties": {"publication_date": KW}},
        "files": {"properties": {"entries": {"properties": {"key": KW, "ext": KW, "file_id": KW, "size": {"type": "long"}}}}},
    },
}


def record(recid, created, communities=(), files=0, deleted_at=None, publication_date="2020", parent=None, **extra):
    doc = {
        "id": recid,
        "created": created,
        "is_published": True,
        "is_deleted": deleted_at is not None,
        "deletion_status": "D" if deleted_at else "P",
        "parent": {"id": parent or f"p-{recid}", "communities": {"ids": list(communities)}},
        "bucket_id": f"bucket-{recid}",
        "access": {"status": "open" if files else "metadata-only"},
        "files": {
            "enabled": bool(files),
            "entries": [
                {"key": f"f{i}.pdf", "ext": "pdf", "size": 1000 * (i + 1), "file_id": f"file-{recid}-{i}"}
                for i in range(files)
            ],
        },
        "metadata": {
            "publication_date": publication_date,
            "resource_type": {"id": "dataset", "title": {"en": "Dataset"}},
            "publisher": "Test Press",
            "languages": [{"id": "eng", "title": {"en": "English"}}],
            "funding": [{"funder": {"id": "00k4n6c32", "name": "European Commission"}}],
            "creators": [{"person_or_org": {"name": "A"}, "affiliations": [{"id": "01ggx4157", "name": "CERN"}]}],
        },
        "custom_fields": {"journal:journal": {"title": "Journal of Tests"}},
    }
    if deleted_at:
        doc["tombstone"] = {"removal_date": deleted_at}
    doc.update(extra)
    return doc


def write(search, prefix, records, communities=()):
    """Creates the records and communities indices (with their aliases) and writes the docs."""
    search.ok("PUT", f"{prefix}rdmrecords-records-record-v7.0.0",
              {"mappings": RECORDS_MAPPING, "aliases": {f"{prefix}rdmrecords-records": {}},
               "settings": {"number_of_replicas": 0}})
    search.ok("PUT", f"{prefix}communities-communities-v1.0.0",
              {"mappings": {"properties": {"id": KW, "slug": KW}}, "aliases": {f"{prefix}communities": {}},
               "settings": {"number_of_replicas": 0}})
    lines = []
    for c in communities:
        lines.append(json.dumps({"index": {"_index": f"{prefix}communities", "_id": c["id"]}}))
        lines.append(json.dumps(c))
    for r in records:
        lines.append(json.dumps({"index": {"_index": f"{prefix}rdmrecords-records", "_id": r["id"]}}))
        lines.append(json.dumps(r))
    if lines:
        import urllib.request

        req = urllib.request.Request(f"{search.url}/_bulk?refresh=true", data=("\n".join(lines) + "\n").encode(),
                                     method="POST", headers={"Content-Type": "application/x-ndjson"})
        with urllib.request.urlopen(req) as resp:
            assert not json.loads(resp.read())["errors"]


def reference_template(name, prefix):
    """The reference implementation's template (shared data), prefix applied."""
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent.parent / "shared" / "reference" / "index-templates" / f"{name}.json"
    return json.loads(path.read_text().replace("__SEARCH_INDEX_PREFIX__", prefix))


def reindex_under_reference_mapping(search, source_pattern, template_name, target):
    """Copies every document of ``source_pattern`` into ``target``, an index created with the
    reference's strict mapping; returns the bulk errors (none expected)."""
    tpl = reference_template(template_name, "x-")
    search.ok("PUT", target, {"mappings": tpl["template"]["mappings"], "settings": {"number_of_replicas": 0}})
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
