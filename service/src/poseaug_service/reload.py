"""Hot reload of the model repository: a thread that rescans `--models` every
`--reload-interval-s` seconds and whenever it is triggered (SIGHUP).

The proto has no admin RPC, and a rescan needs none: an operator (or a CI job, or a volume
sync) drops a new bundle version into the folder, the next scan loads it fully, verifies its
hashes and swaps it in atomically (see ModelRepository.rescan), while requests already parsed
finish on the previous version's sessions. Stage big copies under a hidden name (`.x.tmp`)
and rename them into place, or copy in place: an incomplete bundle fails its hash check and
is retried when its files change again, the old version serving meanwhile.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from poseaug_service.repository import ModelRepository, ReloadReport

log = logging.getLogger(__name__)


class ModelReloader:
    """Runs `repo.rescan()` on a timer and on `trigger()`; reports each change to `on_change`."""

    def __init__(
        self,
        repo: ModelRepository,
        interval_s: float,
        on_change: Callable[[ReloadReport], None] = lambda report: None,
    ) -> None:
        self._repo = repo
        self._interval = interval_s if interval_s > 0 else None
        self._on_change = on_change
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="model-reloader", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def trigger(self) -> None:
        """Rescan now (safe from a signal handler: it only sets an event)."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()

    def _loop(self) -> None:
        while True:
            self._wake.wait(self._interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                report = self._repo.rescan()
            except Exception:  # a reload bug must never take the serving process down
                log.exception("model repository rescan failed")
                continue
            if report.changed or report.failed:
                self._on_change(report)
