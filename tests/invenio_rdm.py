"""A real InvenioRDM instance's indices and documents, for the tests: the indices are created
from the mappings and templates that InvenioRDM itself ships (invenio-rdm-records,
invenio-communities, invenio-stats, read from the pinned PyPI wheels that
``scripts/fetch-invenio-packages`` extracts, never copied into this repository), named and
aliased as invenio-search names them; documents are built in the shapes a real instance
holds (``../shared/spec/real-instance-shapes.md``): no bucket id on records, restricted or
embargoed files indexed as ``{"enabled": true}`` only, ``parent.communities`` as ``{}``,
licences, subjects, funders and affiliations without an id, multilingual vocabulary titles
with ``props``, ``custom_fields: {}``, events as invenio-stats' ``EventsIndexer`` writes them.

Independent of the code under test: tests compute their expectations from what this module
wrote. The strict mappings refuse any field a real instance does not have."""

import hashlib
import json
import os
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SITE = Path(os.environ.get("COMMUNITY_STATS_INVENIO_PACKAGES_DIR") or REPO / ".cache" / "invenio-packages" / "site")

RECORDS = "invenio_rdm_records/records/mappings/os-v2/rdmrecords/records/record-v7.0.0.json"
COMMUNITIES = "invenio_communities/communities/records/mappings/os-v2/communities/communities-v2.0.0.json"
EVENT_TEMPLATES = {
    "view": "invenio_rdm_records/records/stats/templates/events/record_view/os-v2/record-view-v1.0.0.json",
    "download": "invenio_rdm_records/records/stats/templates/events/file_download/os-v2/file-download-v1.0.0.json",
}
DASHBOARD_FLAG = "stats:dashboard_enabled"


def package_json(relative, prefix=""):
    """A JSON file of InvenioRDM's packages, ``__SEARCH_INDEX_PREFIX__`` replaced."""
    path = SITE / relative
    if not path.exists() and "COMMUNITY_STATS_INVENIO_PACKAGES_DIR" not in os.environ:
        subprocess.run([sys.executable, str(REPO / "scripts" / "fetch-invenio-packages")], check=True)
    assert path.exists(), f"{path} is missing: run scripts/fetch-invenio-packages"
    return json.loads(path.read_text().replace("__SEARCH_INDEX_PREFIX__", prefix))


def all_package_files():
    """Every os-v2 mapping and template file of the fetched packages (relative paths)."""
    package_json(RECORDS)  # fetches them if needed
    return sorted(str(p.relative_to(SITE)) for p in SITE.rglob("*.json") if "/os-v2/" in str(p))


def create_index(search, prefix, relative):
    """Creates the index of a mapping file as invenio-search does: a timestamp suffix and one
    alias per path level. Returns the index name."""
    body = package_json(relative, prefix)
    parts = relative.split("/os-v2/", 1)[1][: -len(".json")].split("/")
    body["aliases"] = {f"{prefix}{'-'.join(parts[:n])}": {} for n in range(1, len(parts) + 1)}
    name = f"{prefix}{'-'.join(parts)}-{int(time.time())}"
    search.ok("PUT", name, body)
    return name


def install_event_templates(search, prefix):
    """invenio-rdm-records' legacy event templates, registered as invenio-search registers
    invenio-stats' templates (``_template/<prefix><file stem>``)."""
    for relative in EVENT_TEMPLATES.values():
        stem = relative.rsplit("/", 1)[1][: -len(".json")]
        search.ok("PUT", f"_template/{prefix}{stem}", package_json(relative, prefix))


def create_instance(search, prefix):
    """The records and communities indices (with the dashboards' opt-in custom field, as
    ``invenio communities custom-fields init`` adds it) and the legacy event templates."""
    create_index(search, prefix, RECORDS)
    create_index(search, prefix, COMMUNITIES)
    search.ok(
        "PUT",
        f"{prefix}communities/_mapping",
        {"properties": {"custom_fields": {"properties": {DASHBOARD_FLAG: {"type": "boolean"}}}}},
    )
    install_event_templates(search, prefix)


def rdm_time(text):
    """A timestamp as RDM's dumper writes it (microseconds, ``+00:00``)."""
    t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return t.astimezone(timezone.utc).isoformat(timespec="microseconds")


def file_entry(recid, i, ext="pdf", size=None):
    """One entry of ``files.entries`` as RDM indexes it."""
    return {
        "key": f"f{i}.{ext}",
        "ext": ext,
        "size": size if size is not None else 1000 * (i + 1),
        "mimetype": "application/pdf" if ext == "pdf" else "application/octet-stream",
        "checksum": "md5:" + hashlib.md5(f"{recid}{i}".encode()).hexdigest(),
        "file_id": f"file-{recid}-{i}",
        "access": {"hidden": False},
    }


def files_field(recid, files=0, access="open", exts=("pdf",)):
    """``files`` of a record: open files listed; restricted or embargoed ones indexed as
    ``{"enabled": true}`` only (what RDM writes); no files: ``{"enabled": false}``."""
    if not files:
        return {"enabled": False}
    if access in ("restricted", "embargoed"):
        return {"enabled": True}
    entries = [file_entry(recid, i, exts[i % len(exts)]) for i in range(files)]
    return {
        "enabled": True,
        "count": len(entries),
        "totalbytes": sum(e["size"] for e in entries),
        "types": sorted({e["ext"] for e in entries}),
        "mimetypes": sorted({e["mimetype"] for e in entries}),
        "entries": entries,
    }


def record(
    recid,
    created,
    communities=(),
    files=0,
    deleted_at=None,
    publication_date="2020",
    parent=None,
    file_access="open",
    owner=None,
    version=1,
    is_latest=True,
    metadata=None,
    custom_fields=None,
    **extra,
):
    """A published record version as RDM's dumper indexes it."""
    access_status = "metadata-only" if not files else file_access
    parent_communities = {}
    if communities:
        parent_communities = {
            "ids": list(communities),
            "default": communities[0],
            "entries": [{"id": c, "uuid": c, "is_verified": True} for c in communities],
        }
    doc = {
        "id": recid,
        "uuid": hashlib.md5(recid.encode()).hexdigest(),
        "version_id": 2,
        "pid": {"pk": 1, "pid_type": "recid", "obj_type": "rec", "status": "R"},
        "created": rdm_time(created),
        "updated": rdm_time(created),
        "is_published": True,
        "is_deleted": deleted_at is not None,
        "deletion_status": "D" if deleted_at else "P",
        "has_draft": False,
        "versions": {"index": version, "is_latest": is_latest},
        "parent": {
            "id": parent or f"p-{recid}",
            "communities": parent_communities,
            "pids": {},
            "access": {"owned_by": {"user": str(owner)}} if owner is not None else {},
        },
        "access": {
            "record": "public",
            "files": "public" if file_access == "open" else "restricted",
            "status": access_status,
            "embargo": {"active": file_access == "embargoed", "reason": None},
        },
        "files": files_field(recid, files, file_access),
        "media_files": {"enabled": False},
        "metadata": {
            "title": f"Record {recid}",
            "publication_date": publication_date,
            "resource_type": {
                "id": "dataset",
                "title": {"en": "Dataset", "de": "Datensatz"},
                "props": {"type": "dataset", "subtype": ""},
            },
            "publisher": "Test Press",
            "languages": [{"id": "eng", "title": {"en": "English", "de": "Englisch"}}],
            "funding": [{"funder": {"id": "00k4n6c32", "name": "European Commission"}}],
            "creators": [
                {
                    "person_or_org": {"type": "personal", "name": "A"},
                    "affiliations": [{"id": "01ggx4157", "name": "CERN"}],
                }
            ],
            **(metadata or {}),
        },
        "custom_fields": {"journal:journal": {"title": "Journal of Tests"}} if custom_fields is None else custom_fields,
        "pids": {},
    }
    if deleted_at:
        doc["tombstone"] = {
            "removal_date": rdm_time(deleted_at),
            "removal_reason": {"id": "spam-record"},
            "removed_by": {"user": "1"},
            "is_visible": True,
        }
    doc.update(extra)
    return doc


def community(cid, slug, enabled=None):
    """A community as invenio-communities indexes it; ``enabled=None`` leaves
    ``custom_fields`` empty (a community that never set the opt-in flag)."""
    return {
        "id": cid,
        "uuid": cid,
        "slug": slug,
        "created": "2020-01-01T00:00:00.000000+00:00",
        "updated": "2020-01-01T00:00:00.000000+00:00",
        "version_id": 1,
        "is_verified": True,
        "deletion_status": "P",
        "is_deleted": False,
        "access": {"visibility": "public"},
        "metadata": {"title": slug.title()},
        "custom_fields": {} if enabled is None else {DASHBOARD_FLAG: enabled},
    }


def bulk(search, actions, refresh=True, check=True):
    """Writes ``(index, _id, document)`` triples; returns the items the cluster refused
    (with ``check``, asserts there are none)."""
    lines, errors = [], []
    for index, _id, doc in actions:
        lines.append(json.dumps({"index": {"_index": index, "_id": _id}}))
        lines.append(json.dumps(doc))
    for start in range(0, len(lines), 20000):
        body = ("\n".join(lines[start : start + 20000]) + "\n").encode()
        url = f"{search.url}/_bulk" + ("?refresh=true" if refresh else "")
        req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/x-ndjson"})
        with urllib.request.urlopen(req, timeout=120) as resp:
            reply = json.loads(resp.read())
        errors += [i for i in reply["items"] if "error" in next(iter(i.values()))]
    assert not (check and errors), errors[:3]
    return errors


def write(search, prefix, records, communities=()):
    """Creates the instance's indices (if the prefix has none) and writes the documents."""
    if search.request("HEAD", f"{prefix}rdmrecords-records")[0] != 200:
        create_instance(search, prefix)
    actions = [(f"{prefix}communities", c["id"], c) for c in communities]
    actions += [(f"{prefix}rdmrecords-records", r["id"], r) for r in records]
    if actions:
        bulk(search, actions)


def event(
    kind,
    timestamp,
    recid,
    parent_recid,
    visitor="v1",
    *,
    bucket_id=None,
    file_id=None,
    file_key=None,
    size=None,
    via_api=False,
    country="CH",
    referrer=None,
    updated=None,
):
    """``(_id, document)`` of a usage event as invenio-stats' ``EventsIndexer`` indexes it:
    ``timestamp`` to the second without offset, ``updated_timestamp`` with microseconds and
    ``+00:00``, ``_id`` = ``<timestamp rounded down to 10 s>-sha1(unique_id + visitor_id)``."""
    ts = datetime.fromisoformat(timestamp).replace(microsecond=0)
    doc = {
        "timestamp": ts.isoformat(),
        "recid": recid,
        "parent_recid": parent_recid,
        "referrer": referrer,
        "via_api": via_api,
        "is_robot": False,
        "is_machine": False,
        "country": country,
        "visitor_id": visitor,
        "unique_session_id": hashlib.sha224(f"{visitor}{ts:%Y%m%d%H}".encode()).hexdigest(),
    }
    if kind == "download":
        doc.update(
            {
                "bucket_id": bucket_id,
                "file_id": file_id,
                "file_key": file_key,
                "size": size,
                "unique_id": f"{bucket_id}_{file_id}",
            }
        )
    else:
        doc["unique_id"] = f"{'api' if via_api else 'ui'}_{recid}"
    doc["updated_timestamp"] = updated or (ts.replace(tzinfo=timezone.utc).isoformat(timespec="microseconds"))
    window = ts.replace(second=ts.second - ts.second % 10)
    _id = f"{window.isoformat()}-{hashlib.sha1((doc['unique_id'] + visitor).encode()).hexdigest()}"
    return _id, doc


def legacy_index(prefix, kind, timestamp):
    """The monthly legacy index invenio-stats writes an event to."""
    family = "record-view" if kind == "view" else "file-download"
    return f"{prefix}events-stats-{family}-{timestamp[:7]}"
