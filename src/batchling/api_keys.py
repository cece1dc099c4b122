"""API keys read from the environment, for the clients the `batchling batches` commands build.

batchling never stores a key: to reach a job it created earlier, a command needs the key the job
was created with, exported under the variable the provider's SDK reads.
"""

from __future__ import annotations

import os
from collections.abc import Sequence


class MissingAPIKeyError(RuntimeError):
    """None of a provider's API key variables is set."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = tuple(names)
        super().__init__(
            f"{' or '.join(self.names)} is not set: export the API key the job was created with "
            "(batchling keeps no keys), then run this again."
        )


def from_environment(names: Sequence[str]) -> tuple[str, str]:
    """The first of `names` that is set, and its value; `MissingAPIKeyError` if none is."""
    for name in names:
        value = os.environ.get(name)
        if value:
            return name, value
    raise MissingAPIKeyError(names)
