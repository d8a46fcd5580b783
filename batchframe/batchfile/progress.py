"""The job's progress display: the run's own bar (or log lines without a terminal), counting rows
answered as they are merged, with the batches' state beside it instead of the calls in flight."""

from __future__ import annotations

from ..pipeline.progress import Progress


class FileProgress(Progress):
    def __init__(self, *, total: int, enabled: bool, currency: str | None) -> None:
        super().__init__(total=total, initial=0, enabled=enabled, currency=currency, desc="batchframe (file)")
        self.state = "submitting"

    def phase(self, state: str) -> None:
        self.state = state
        self.tick(0, 0)

    def _postfix(self, in_flight: int) -> str:
        parts = [self.state, f"failed {self.failed}"]
        if self.currency is not None:
            parts.append(f"{self.cost:.4f} {self.currency}")
        return ", ".join(parts)
