"""Our index templates agree field by field with the reference implementation's (data in
``../shared/reference/index-templates``), and install on the real node."""

import json
from pathlib import Path

import pytest

from invenio_community_stats import _core

REFERENCE = Path(__file__).resolve().parent.parent.parent / "shared" / "reference" / "index-templates"
COMPARED = [
    "record-view-v2.0.0",
    "file-download-v2.0.0",
    "stats-community-events-v1.0.0",
    "stats-community-usage-delta-v1.0.0",
    "stats-community-usage-snapshot-v1.0.0",
    "stats-community-records-delta-added-v1.0.0",
    "stats-community-records-snapshot-added-v1.0.0",
]


def reference(name):
    path = REFERENCE / f"{name}.json"
    assert path.exists(), f"reference templates not found at {REFERENCE} (CI has ../shared beside the checkout)"
    return json.loads(path.read_text().replace("__SEARCH_INDEX_PREFIX__", "kc-"))


def ours(name):
    return json.loads(_core.index_template(name, "kc-"))


def flatten(mapping, path=""):
    """Every leaf of a mapping as path -> value, so differences name the field."""
    out = {}
    for key, value in mapping.items():
        p = f"{path}.{key}" if path else key
        if isinstance(value, dict):
            out.update(flatten(value, p))
        else:
            out[p] = value
    return out


@pytest.mark.parametrize("name", COMPARED)
def test_mappings_agree_field_by_field(name):
    ref, our = reference(name), ours(name)
    assert flatten(our["template"]["mappings"]) == flatten(ref["template"]["mappings"])
    assert our["index_patterns"] == ref["index_patterns"]
    assert our["template"]["aliases"] == ref["template"]["aliases"]
    assert our["priority"] == ref["priority"]
    assert flatten(our["template"]["settings"].get("analysis", {})) == flatten(ref["template"]["settings"].get("analysis", {}))


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
