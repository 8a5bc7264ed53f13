"""Our index templates agree field by field with the reference implementation's (recorded
facts, ``tests/data/reference_template_facts.json``), and install on the real node; every
index and template of an InvenioRDM 14 instance can be created on the project's node."""

import json

import pytest

from invenio_community_stats import _core

import reference_facts
from helpers import load_script
from invenio_rdm import all_package_files, package_json

COMPARED = [
    "record-view-v2.0.0",
    "file-download-v2.0.0",
    "stats-community-events-v1.0.0",
    "stats-community-usage-delta-v1.0.0",
    "stats-community-usage-snapshot-v1.0.0",
    "stats-community-records-delta-added-v1.0.0",
    "stats-community-records-snapshot-added-v1.0.0",
]


def ours(name):
    return json.loads(_core.index_template(name, "kc-"))


@pytest.mark.parametrize("name", COMPARED)
def test_mappings_agree_field_by_field(name):
    ref, our = reference_facts.facts(name, "kc-"), ours(name)
    assert reference_facts.flatten(our["template"]["mappings"]) == ref["mappings"]
    assert our["index_patterns"] == ref["index_patterns"]
    assert sorted(our["template"]["aliases"]) == ref["aliases"]
    assert our["priority"] == ref["priority"]
    assert reference_facts.flatten(our["template"]["settings"].get("analysis", {})) == ref["analysis"]


def test_recorded_facts_are_the_recorders_and_still_match_the_shared_reference_templates():
    """The recorded facts (used on a plain clone) are what the recorder wrote: their content
    digest holds. Beside ../shared, they are also still the reference templates' facts."""
    document = json.loads(reference_facts.FACTS_FILE.read_text())
    digests = load_script("recorded_data.py")
    recorded = document["templates"]
    assert digests.digest(recorded) == document["content_sha256"], "edited by hand: run scripts/record-reference-facts"
    assert len(recorded) == 14
    if reference_facts.SHARED_TEMPLATES.is_dir():
        files = sorted(reference_facts.SHARED_TEMPLATES.glob("*.json"))
        assert document["source_sha256"] == digests.files_digest(files), "run scripts/record-reference-facts"
        assert recorded == {p.stem: reference_facts.RECORDER.facts(json.loads(p.read_text())) for p in files}


def test_every_template_installs_and_applies(search, index_prefix):
    for name in _core.index_template_names():
        body = json.loads(_core.index_template(name, index_prefix))
        search.ok("PUT", f"_index_template/{index_prefix}{name}", body)
    search.ok("PUT", f"{index_prefix}events-stats-record-view-2024-01-v2.0.0")
    mapping = search.ok("GET", f"{index_prefix}events-stats-record-view-2024-01-v2.0.0/_mapping")
    props = next(iter(mapping.values()))["mappings"]["properties"]
    assert "community_ids" in props and props["timestamp"]["format"] == "strict_date_hour_minute_second"
    aliases = search.ok("GET", f"{index_prefix}events-stats-record-view-2024-01-v2.0.0/_alias")
    assert f"{index_prefix}events-stats-record-view" in next(iter(aliases.values()))["aliases"]


def test_every_index_and_template_of_an_invenio_rdm_instance_can_be_created(search, index_prefix):
    """The mappings and templates of invenio-app-rdm 14's packages (geo_shape, join and
    percolator fields included) are accepted by the node the project starts."""
    files = all_package_files()
    assert any("record-v7.0.0" in f for f in files) and any("request-v1.0.0" in f for f in files)
    refused, created = {}, []
    try:
        for n, relative in enumerate(files):
            body = package_json(relative, index_prefix)
            stem = relative.rsplit("/", 1)[1][: -len(".json")].lower()
            name = f"{index_prefix}{n}-{stem}"
            if "/component_templates/" in relative:
                path = f"_component_template/{name}"
            elif "index_patterns" in body and ("template" in body or "data_stream" in body):
                path = f"_index_template/{name}"
            elif "index_patterns" in body:
                path = f"_template/{name}"
            else:
                path = name
            status, reply = search.request("PUT", path, body)
            if status == 200:
                created.append(path)
            else:
                refused[relative] = reply
    finally:
        for path in created:
            search.request("DELETE", path)
    assert refused == {}
