"""Raises an uncaught error; run by the CLI tests."""

from __future__ import annotations


def explode() -> None:
    raise ValueError("boom from the script")


if __name__ == "__main__":
    explode()
