"""A route index: candidates by the path's first segment, so matching does not scan every route.

Routes whose path is exact or a prefix that spans the first segment are filed
under that segment; all others (regex, short or empty prefix) are checked for
every request. Candidates are merged by route position, so "first match wins"
is unchanged.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from admitd.core.route import Route

__all__ = ["RouteIndex"]


def _first_segment(path: str) -> str | None:
    """`/api/v1/x` -> `api`; None when the path has no complete first segment."""
    end = path.find("/", 1)
    return path[1:end] if end > 1 else None


class RouteIndex:
    def __init__(self, routes: Sequence[Route]) -> None:
        self._by_segment: dict[str, list[tuple[int, Route]]] = {}
        self._everywhere: list[tuple[int, Route]] = []
        for position, route in enumerate(routes):
            key = self._key(route)
            bucket = self._everywhere if key is None else self._by_segment.setdefault(key, [])
            bucket.append((position, route))

    @staticmethod
    def _key(route: Route) -> str | None:
        match = route.match
        if match.path_regex is not None:
            return None
        if match.path_exact is not None:
            return _first_segment(match.path_exact + "/")
        if match.path_prefix is not None:
            return _first_segment(match.path_prefix)
        return None

    def candidates(self, path: str) -> Iterator[Route]:
        """Routes that may match `path`, in policy order."""
        segment = _first_segment(path + "/")
        filed = self._by_segment.get(segment, []) if segment is not None else []
        if not filed:
            return (route for _, route in self._everywhere)
        if not self._everywhere:
            return (route for _, route in filed)
        return (
            route for _, route in heapq.merge(filed, self._everywhere, key=lambda pair: pair[0])
        )
