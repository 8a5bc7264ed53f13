"""What the recording scripts (``record-seed-lines``, ``record-reference-facts``) share: the
digests a recorded file carries, so that a test on a plain clone (no ../shared) can tell the
recorded data from a hand-edited copy, and a test beside ../shared can tell a changed source."""

import hashlib
import json


def digest(value):
    """SHA-256 of ``value`` as canonical JSON (a recorded file's ``content_sha256``)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def files_digest(paths):
    """SHA-256 over source files (name and bytes of each, in name order): ``source_sha256``."""
    h = hashlib.sha256()
    for path in sorted(paths):
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()
