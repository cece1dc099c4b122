"""Route templates (``/v1/batches/{id}``) and the table protocols register their handlers in."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from batchling.testing.http_types import DropConnection, Request, Response

Handler = Callable[[Request], "Response | DropConnection"]
ErrorResponder = Callable[[int, str, "str | None"], Response]
"""Builds a provider-shaped error response from (status, message, code)."""
ArrivalHook = Callable[[Request], None]
"""Called for every request a route matches, before faults and handlers (for statistics)."""
Guard = Callable[[Request], bool]
"""Decides whether a route serves a request whose method and path it matches (see Router)."""

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class RouteTemplate:
    """``"POST /v1/batches/{id}/cancel"``: a method and a path whose ``{name}`` matches a segment.

    A method of ``*`` (in the template or in ``match``) matches any method.
    """

    def __init__(self, route: str) -> None:
        method, sep, path = route.strip().partition(" ")
        if not sep or not path.startswith("/"):
            raise ValueError(f"route must look like 'METHOD /path', got {route!r}")
        self.route = f"{method.upper()} {path}"
        self.method = method.upper()
        pattern = ""
        position = 0
        for match in _PLACEHOLDER.finditer(path):
            pattern += re.escape(path[position : match.start()])
            pattern += f"(?P<{match.group(1)}>[^/]+)"
            position = match.end()
        pattern += re.escape(path[position:])
        self._regex = re.compile(pattern + r"\Z")

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if "*" not in (self.method, method) and self.method != method.upper():
            return None
        found = self._regex.match(path)
        return found.groupdict() if found else None

    def __repr__(self) -> str:
        return f"RouteTemplate({self.route!r})"


@dataclass(frozen=True)
class Route:
    template: RouteTemplate
    handler: Handler
    errors: ErrorResponder
    on_arrival: ArrivalHook | None = None
    when: Guard | None = None


@dataclass(frozen=True)
class RouteMatch:
    route: Route
    path_params: dict[str, str]


class Router:
    """Ordered route table; the first matching route wins.

    A route added with a ``when`` guard serves only requests the guard accepts, and is tried
    before every unguarded route: two providers may share a path (``GET /v1/batches/{id}`` is
    both OpenAI's and Gemini's), and the guard tells their clients apart by their headers.
    """

    def __init__(self) -> None:
        self._routes: list[Route] = []

    def add(
        self,
        route: str,
        handler: Handler,
        errors: ErrorResponder,
        *,
        on_arrival: ArrivalHook | None = None,
        when: Guard | None = None,
    ) -> None:
        self._routes.append(Route(RouteTemplate(route), handler, errors, on_arrival, when))

    def find(self, method: str, path: str, request: Request | None = None) -> RouteMatch | None:
        """The route serving this request; guarded routes need ``request`` to be considered."""
        for route in self._ordered():
            params = route.template.match(method, path)
            if params is None:
                continue
            if route.when is not None and (request is None or not route.when(request)):
                continue
            return RouteMatch(route, params)
        return None

    def _ordered(self) -> list[Route]:
        return [r for r in self._routes if r.when is not None] + [
            r for r in self._routes if r.when is None
        ]

    def path_is_known(self, path: str) -> bool:
        """True if some route serves this path with another method (for 405 answers)."""
        return any(route.template.match("*", path) is not None for route in self._routes)


class ProviderProtocol(Protocol):
    """A provider emulation (OpenAI, Anthropic, Gemini) that adds its routes to a Router."""

    def register(self, router: Router) -> None: ...

    def error_response(self, status: int, message: str, code: str | None) -> Response:
        """Provider-shaped error answer, used for injected faults on this provider's routes."""
        ...
