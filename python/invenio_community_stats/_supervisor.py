"""Entry point of a background job's supervisor process (started by the launcher in a new
session; reads its job description from standard input). Not for direct use."""

import sys


def main():
    """Run the supervisor; exit with the worker's exit code."""
    from . import _core

    spec = sys.stdin.read()
    try:
        code = _core.supervise(spec)
    except Exception as exc:  # the handshake already told the launcher
        sys.stderr.write(f"supervisor: {exc}\n")
        return 1
    return code if 0 <= code < 256 else 1


if __name__ == "__main__":
    sys.exit(main())
