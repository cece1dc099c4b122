"""In-memory store of uploaded and generated files (shared by provider protocols)."""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class StoredFile:
    id: str
    filename: str
    purpose: str
    data: bytes
    created_at: int
    expires_at: int | None = None
    mime_type: str | None = None
    owner: str = "openai"
    """Which host's Files API lists and serves it (``openai``, ``groq``, ``xai``, ``azure``)."""

    @property
    def size(self) -> int:
        return len(self.data)


class FileStore:
    """Thread-safe id → file map that remembers insertion order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._files: dict[str, StoredFile] = {}

    def add(self, stored: StoredFile) -> StoredFile:
        with self._lock:
            self._files[stored.id] = stored
        return stored

    def get(self, file_id: str) -> StoredFile | None:
        with self._lock:
            return self._files.get(file_id)

    def delete(self, file_id: str) -> bool:
        with self._lock:
            return self._files.pop(file_id, None) is not None

    def all(self) -> list[StoredFile]:
        with self._lock:
            return list(self._files.values())
