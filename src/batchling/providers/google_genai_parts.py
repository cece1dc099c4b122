"""Gemini: a text part's wire form, written directly inside `batchify()`.

google-genai turns each `types.Part` of a request into its wire dict with
`google.genai.models._Part_to_mldev`, which looks every one of the part's fields up through
`get_value_by_path`; on a pydantic model each look-up walks all the part's fields, so one
plain text part costs a few hundred field visits. At tens of thousands of batched calls that
is a third of the client's CPU time, spent on a dict that for a part holding only text is
always `{"text": text}`.

Inside a `batchify()` block batchling answers that case itself (a hook target): an exact
`types.Part` whose fields are all `None` except `text`, a `str`. Every other part
goes to the SDK's function. The shortcut turns itself off for good if the SDK's function,
given such a part once, answers anything but `{"text": text}` (a release that adds a field
to every part). Under `BATCHLING_VERIFY_FAST_PATHS=1` (the tests) each shortcut is also
checked against the SDK's own answer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from google.genai import types

from batchling import stainless
from batchling.provider import PatchTarget

log = logging.getLogger(__name__)

TARGET = PatchTarget("google.genai.models", "_Part_to_mldev", hook=True)

_PROBE_TEXT = "batchling"


class TextParts:
    """Stands in for `_Part_to_mldev` on text-only parts (see the module docstring)."""

    def __init__(self) -> None:
        self._field_count = len(vars(types.Part()))
        self._checked = False
        self._usable = False

    def to_mldev(
        self, wrapped: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """What `_Part_to_mldev(*args, **kwargs)` returns."""
        text = self._text_only(args[0]) if args and not kwargs else None
        if text is None or not self._is_usable(wrapped):
            return wrapped(*args, **kwargs)
        answer = {"text": text}
        if stainless.VERIFY_FAST_PATHS:
            expected = wrapped(*args, **kwargs)
            if expected != answer:
                raise AssertionError(f"a text part's wire form differs from the SDK's: {expected}")
        return answer

    def _text_only(self, part: Any) -> str | None:
        """The part's text if it is a plain `types.Part` holding nothing else."""
        if type(part) is not types.Part:
            return None
        fields = vars(part)
        text = fields.get("text")
        if type(text) is not str or len(fields) != self._field_count or part.__pydantic_extra__:
            return None
        for name, value in fields.items():
            if value is not None and name != "text":
                return None
        return text

    def _is_usable(self, wrapped: Callable[..., Any]) -> bool:
        if not self._checked:
            self._checked = True
            try:
                probe = wrapped(types.Part(text=_PROBE_TEXT))
            except Exception:  # any surprise leaves the SDK's function in charge
                probe = None
            self._usable = probe == {"text": _PROBE_TEXT}
            if not self._usable:
                log.debug("google-genai's _Part_to_mldev answered %r for a text part", probe)
        return self._usable
