"""The batcher as the tests drive it: a default `run` and callers that block for their rows
(the server never blocks: it awaits each request's `on_done`)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from poseaug_service.batcher import DynamicBatcher, Pending, RunFn
from poseaug_service.errors import CancelledError


class BlockingBatcher(DynamicBatcher):
    """A DynamicBatcher whose requests run on `run` unless they bring their own, with
    `wait` and `run` for callers on plain threads."""

    def __init__(self, run: RunFn, **kwargs) -> None:
        super().__init__(**kwargs)
        self._default_run = run

    def submit(
        self,
        inputs: np.ndarray,
        is_active: Callable[[], bool] = lambda: True,
        *,
        run: RunFn | None = None,
        **kwargs,
    ) -> Pending:
        return super().submit(inputs, is_active, run=run or self._default_run, **kwargs)

    def wait(self, pending: Pending, timeout: float | None = None) -> np.ndarray:
        """Block until the request's rows are all computed; returns [n, ...] outputs."""
        try:
            if not pending.done.wait(timeout):
                self.cancel(pending)
                raise CancelledError("", "deadline exceeded while queued")
        finally:
            self.release(pending)
        if pending.error is not None:
            raise pending.error
        assert pending.outputs is not None
        return pending.outputs

    def run(self, inputs: np.ndarray, is_active: Callable[[], bool] = lambda: True) -> np.ndarray:
        return self.wait(self.submit(inputs, is_active))
