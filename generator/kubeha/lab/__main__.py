"""``python -m kubeha.lab apiserver|client ...``: the helpers the lab runs inside its namespaces."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from kubeha.lab.clients import run_client, run_watch, serve_apiserver


def main(argv: Sequence[str]) -> int:
    """Entry point of the helpers the lab runs inside namespaces."""
    if len(argv) == 6 and argv[0] == "apiserver":
        serve_apiserver(argv[1], int(argv[2]), argv[3], argv[4], argv[5])
    elif len(argv) == 5 and argv[0] == "client":
        run_client(argv[1], int(argv[2]), float(argv[3]), min(float(argv[4]), 600.0))
    elif len(argv) == 4 and argv[0] == "watch":
        run_watch(argv[1], int(argv[2]), min(float(argv[3]), 600.0))
    else:
        print("usage: python -m kubeha.lab apiserver ADDR PORT CERT KEY NODE | client HOST PORT RATE SECONDS"
              " | watch HOST PORT SECONDS",
              file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
