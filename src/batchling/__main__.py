"""`python -m batchling`: the `batchling` command."""

from __future__ import annotations

from batchling.cli import main

if __name__ == "__main__":
    main()
