"""The lift queue: parsed lift requests handed to their model's DynamicBatcher, and their poses
awaited on the event loop.

A handler `submit`s a parsed request (it runs on the sessions of the model version it was
parsed with: the lifter, or for a temporal model's whole-track rows its whole-track form), or a
stream's step rows (`submit_steps`, the step form), and awaits `collect`; the batch worker
resolves the handler's future through a LoopWaker (one loop wake-up per finished batch, not
per caller). The handler `release`s the request once it has answered its caller, or `cancel`s
it when nobody will collect it.

Queued work counts in the memory budget (memory_budget.py, part `queued`): its inputs and the
outputs it will get are reserved before it is queued, and given back on release or cancel.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import numpy as np

from poseaug_service.batcher import BatcherRegistry, DynamicBatcher, Pending, RunFn
from poseaug_service.calls import CallState
from poseaug_service.config import ServerConfig
from poseaug_service.errors import CancelledError, DeadlineExceededError
from poseaug_service.lifting import LiftInput
from poseaug_service.loop_waker import LoopWaker
from poseaug_service.memory_budget import ByteBudget
from poseaug_service.metrics import Metrics
from poseaug_service.sessions import LoadedModel
from poseaug_service.track_windows import TrackChunks, Windows

__all__ = ["LiftQueue", "Submitted"]

POSE_BYTES = 17 * 3 * 4  # one answered float32 pose


@dataclass(eq=False)
class Submitted:
    """A queued lift request: its batcher, its place there and the future its answer wakes."""

    batcher: DynamicBatcher
    pending: Pending
    future: asyncio.Future
    budget: ByteBudget | None = None
    held: int = 0  # bytes of the budget's `queued` part, until released or cancelled

    def release(self) -> None:
        """Its caller has been answered (see DynamicBatcher.release)."""
        self.batcher.release(self.pending)
        self._give_back()

    def cancel(self) -> None:
        """Drop it: nobody will collect its answer."""
        self.batcher.cancel(self.pending)
        self._give_back()

    def _give_back(self) -> None:
        held, self.held = self.held, 0
        if held and self.budget is not None:
            self.budget.give(held, "queued")


class LiftQueue:
    """One DynamicBatcher per model name (every loaded name from the start, later names on
    first use) and the submission of lift requests to them. Build it on the serving loop."""

    def __init__(
        self, config: ServerConfig, metrics: Metrics, names: list[str], budget: ByteBudget
    ) -> None:
        self._config = config
        self._metrics = metrics
        self._budget = budget
        self.batchers = BatcherRegistry(self._new_batcher)
        self._waker = LoopWaker(asyncio.get_running_loop())
        for name in names:
            self.batchers.get(name)

    def _new_batcher(self, name: str) -> DynamicBatcher:
        config = self._config
        return DynamicBatcher(
            max_batch=config.max_batch,
            max_delay_s=config.max_queue_delay_us / 1e6,
            max_queue=config.max_queue,
            workers=config.batch_workers,
            stats=self._metrics.batch_stats(name),
            name=f"lift-{name}",
        )

    def submit(
        self, parsed: LiftInput, call: CallState, inputs: np.ndarray | Windows | None = None
    ) -> Submitted:
        """Queue a parsed request on its model version's sessions (its keypoints, or `inputs`
        such as a temporal model's windows, or whole-track rows for its whole-track form);
        raises ResourceExhaustedError when that model's queue is full."""
        model = parsed.model
        if isinstance(inputs, TrackChunks):
            runs = model.run_whole_track, model.run_whole_track_busy
            answers = inputs.row_frames - model.temporal_frames + 1
            out = len(inputs) * answers * POSE_BYTES
            return self._submit(model, call, inputs, *runs, out, row_cost=inputs.row_frames)
        x = parsed.keypoints if inputs is None else inputs
        out = len(x) * POSE_BYTES
        return self._submit(model, call, x, model.run_lifter, model.run_lifter_busy, out)

    def submit_steps(self, model: LoadedModel, call: CallState, rows: np.ndarray) -> Submitted:
        """Queue packed step rows (stream_tracks.StepRun.inputs) on the model's step form."""
        assert model.step_layout is not None
        out = len(rows) * model.step_layout.out_width * 4
        return self._submit(model, call, rows, model.run_step, model.run_step_busy, out)

    def _submit(
        self,
        model: LoadedModel,
        call: CallState,
        inputs: np.ndarray | Windows,
        run: RunFn,
        run_busy: RunFn,
        out_bytes: int,
        row_cost: int = 1,
    ) -> Submitted:
        """Reserve the work's bytes (ResourceExhaustedError naming `queued` when there is no
        room), then queue it."""
        held = inputs.nbytes + out_bytes
        self._budget.reserve(held, "queued")
        future = asyncio.get_running_loop().create_future()
        batcher = self.batchers.get(model.name)
        resolve = self._waker.resolve
        try:
            pending = batcher.submit(
                inputs,
                call.is_active,
                run=run,
                on_done=lambda: resolve(future),
                run_busy=run_busy,
                row_cost=row_cost,
            )
        except BaseException:
            self._budget.give(held, "queued")
            raise
        return Submitted(batcher, pending, future, self._budget, held)

    async def collect(self, submitted: Submitted, call: CallState) -> np.ndarray:
        """The lifted poses, within the call's deadline; a caller who leaves cancels them."""
        pending = submitted.pending
        try:
            await asyncio.wait_for(submitted.future, call.time_left())  # None: no deadline
        except (TimeoutError, asyncio.CancelledError) as exc:
            call.cancelled = True
            submitted.cancel()
            if isinstance(exc, TimeoutError):
                raise DeadlineExceededError(
                    "", "deadline exceeded before the work finished"
                ) from None
            raise
        if pending.error is not None:
            if isinstance(pending.error, CancelledError):
                raise call.as_status(pending.error)
            raise pending.error
        assert pending.outputs is not None
        return pending.outputs

    def close(self) -> None:
        """Stop every batcher after its queue drains."""
        self.batchers.close()
