"""Exits with the code given as its first argument; run by the CLI tests."""

from __future__ import annotations

import sys

if __name__ == "__main__":
    print("about to exit")
    sys.exit(int(sys.argv[1]))
