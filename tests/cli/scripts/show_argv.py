"""Prints what a script sees of how it was started, as JSON; run by the CLI tests."""

from __future__ import annotations

import json
import sys

if __name__ == "__main__":
    print(json.dumps({"argv": sys.argv, "name": __name__, "file": __file__, "path0": sys.path[0]}))
