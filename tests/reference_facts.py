"""The reference implementation's index templates as recorded facts
(``tests/data/reference_template_facts.json``, made by ``scripts/record-reference-facts``
from ``../shared/reference/index-templates``): field paths and values, so that the tests
that compare with the reference pass on a plain clone."""

import json
from pathlib import Path

from helpers import load_script

HERE = Path(__file__).resolve().parent
FACTS_FILE = HERE / "data" / "reference_template_facts.json"
#: Where the reference's templates are when the project's shared notes sit beside the checkout.
SHARED_TEMPLATES = HERE.parent.parent / "shared" / "reference" / "index-templates"
PLACEHOLDER = "__SEARCH_INDEX_PREFIX__"


#: ``scripts/record-reference-facts``: its ``facts`` and ``flatten`` are what the tests compare with.
RECORDER = load_script("record-reference-facts")
flatten = RECORDER.flatten


def unflatten(leaves):
    """The JSON object whose leaves are ``leaves``."""
    out = {}
    for path, value in leaves.items():
        node = out
        *parents, last = path.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    return out


def all_facts():
    """Every recorded template's facts, by template name (prefix placeholder kept)."""
    return json.loads(FACTS_FILE.read_text())["templates"]


def facts(name, prefix):
    """One template's facts with the prefix applied."""
    return json.loads(json.dumps(all_facts()[name]).replace(PLACEHOLDER, prefix))


def mappings(name, prefix="x-"):
    """The reference template's mappings, rebuilt from the recorded leaves."""
    return unflatten(facts(name, prefix)["mappings"])
