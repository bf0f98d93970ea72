"""Bad input is logged once per cause, counted, and skipped; the node keeps running."""

from __future__ import annotations

from collections import Counter
from typing import Any


class InputProblems:
    """Counts problems by cause; logs the first of each cause as a warning, later ones every ``every``-th time."""

    def __init__(self, logger: Any, every: int = 100) -> None:
        self._logger = logger
        self._every = every
        self.counts: Counter[str] = Counter()

    def report(self, cause: str, detail: str) -> None:
        self.counts[cause] += 1
        n = self.counts[cause]
        if n == 1 or n % self._every == 0:
            self._logger.warning(f"skipping input ({cause}, {n} so far): {detail}")

    def report_error(self, exc: Exception) -> None:
        """Count ``exc`` under its cause (``ImageError.cause``; otherwise the exception's type)."""
        self.report(getattr(exc, "cause", type(exc).__name__), str(exc))

    @property
    def total(self) -> int:
        return sum(self.counts.values())
