"""The model repository: every loaded bundle version by name, which one answers requests
without a model name, and the rescan that swaps in new versions."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import onnxruntime as ort

from poseaug_service.bundle import find_bundle_dirs, fingerprint, load_bundle
from poseaug_service.config import ServerConfig
from poseaug_service.sessions import LoadedModel, load_model

log = logging.getLogger(__name__)


def public_reason(error: Exception, models: Path) -> str:
    """Why a bundle was refused, without the server's own paths: ListModels shows it to
    callers (the log keeps the whole message)."""
    reason = str(error)
    for prefix in sorted({str(models.resolve()), str(models.absolute()), str(models)}, key=len):
        reason = reason.replace(prefix + os.sep, "")
    return reason


class RepositoryError(Exception):
    """The model repository cannot be served at all (the CLI exits non-zero with it)."""


@dataclass(frozen=True)
class RepositoryState:
    """One consistent view of the repository: readers take it whole, reloads replace it whole."""

    models: Mapping[str, LoadedModel]
    default_name: str
    refused: Mapping[str, str] = field(default_factory=dict)

    def get(self, name: str) -> LoadedModel | None:
        return self.models.get(name or self.default_name)


@dataclass(frozen=True)
class ReloadReport:
    """What one rescan changed."""

    loaded: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.loaded or self.removed)


class ModelRepository:
    """All loaded models by name, which one answers requests without a model name, and the
    rescan that swaps in new versions.

    A rescan loads a new or changed bundle completely (hashes verified, sessions open) before
    one assignment publishes the new RepositoryState; a bundle that fails to load (for example
    still being copied) keeps its previous version serving and is retried when its files change
    again.
    """

    def __init__(self, config: ServerConfig, state: RepositoryState) -> None:
        self.config = config
        self._state = state
        self._failed: dict[str, tuple] = {}
        self._scan_lock = threading.Lock()

    # --- readers (request path) --------------------------------------------------------
    @property
    def state(self) -> RepositoryState:
        return self._state

    @property
    def models(self) -> Mapping[str, LoadedModel]:
        return self._state.models

    def get(self, name: str) -> LoadedModel | None:
        return self._state.get(name)

    # --- loading -----------------------------------------------------------------------
    def _load_one(self, path: Path, fp: tuple) -> LoadedModel:
        model = load_model(load_bundle(path), self.config)
        model.fingerprint = fp
        log.info(
            "loaded model bundle %s version %s (lifter input: %s, augmentor: %s) on providers %s",
            model.name,
            model.version or "?",
            model.lifter_input,
            "yes" if model.augmentor is not None else "no",
            model.providers,
        )
        return model

    @classmethod
    def load(cls, config: ServerConfig) -> ModelRepository:
        """Load every bundle under config.models; refuse bad ones with a logged reason."""
        ort.set_default_logger_severity(3)
        dirs = find_bundle_dirs(config.models)
        if not dirs:
            raise RepositoryError(f"no model bundle found in {config.models}")
        repo = cls(config, RepositoryState(models={}, default_name=""))
        models: dict[str, LoadedModel] = {}
        refused: dict[str, str] = {}
        for path in dirs:
            fp = fingerprint(path)
            try:
                models[path.name] = repo._load_one(path, fp)
            except Exception as exc:  # any failure refuses this bundle only, with its reason
                refused[path.name] = public_reason(exc, config.models)
                repo._failed[path.name] = fp
                log.error("refusing model bundle %s: %s", path.name, exc)
        if not models:
            raise RepositoryError(
                f"no usable model bundle in {config.models}: "
                + "; ".join(f"{k}: {v}" for k, v in refused.items())
            )
        default = _choose_default(models, config.default_model)
        log.info("default model: %s", default)
        repo._state = RepositoryState(models=models, default_name=default, refused=refused)
        return repo

    def rescan(self) -> ReloadReport:
        """Load new and changed bundles, drop removed ones, then publish the result at once.

        Never raises: a failure keeps what is served now and is logged.
        """
        with self._scan_lock:
            old = self._state
            try:
                dirs = find_bundle_dirs(self.config.models)
            except OSError as exc:
                log.error("cannot rescan %s: %s", self.config.models, exc)
                return ReloadReport()
            models: dict[str, LoadedModel] = {}
            refused = dict(old.refused)
            loaded, failed = [], []
            for path in dirs:
                name = path.name
                current = old.models.get(name)
                try:
                    fp = fingerprint(path)
                except OSError:  # vanished while listed, or unreadable: change nothing now
                    if current is not None:
                        models[name] = current
                    continue
                if current is not None and current.fingerprint == fp:
                    models[name] = current
                    continue
                if self._failed.get(name) == fp:  # same bytes that failed before
                    if current is not None:
                        models[name] = current
                    continue
                try:
                    models[name] = self._load_one(path, fp)
                except Exception as exc:
                    self._failed[name] = fp
                    refused[name] = public_reason(exc, self.config.models)
                    failed.append(name)
                    log.error(
                        "not loading model bundle %s (%s); %s",
                        name,
                        exc,
                        f"version {current.version} keeps serving"
                        if current is not None
                        else "retrying when its files change",
                    )
                    if current is not None:
                        models[name] = current
                    continue
                self._failed.pop(name, None)
                refused.pop(name, None)
                loaded.append(name)
            removed = [n for n in old.models if n not in models]
            if not loaded and not removed:
                if failed:
                    self._state = replace(old, refused=refused)
                return ReloadReport(failed=tuple(failed))
            if not models:
                log.error(
                    "rescan found no usable bundle in %s; keeping the loaded ones",
                    self.config.models,
                )
                return ReloadReport(failed=tuple(failed))
            try:
                default = _choose_default(models, self.config.default_model, quiet=True)
            except RepositoryError as exc:
                log.error("rescan: %s; keeping the loaded bundles", exc)
                return ReloadReport(failed=tuple(failed))
            for name in removed:
                log.info("model bundle %s was removed from %s; unloaded", name, self.config.models)
            for name in set(refused) - {p.name for p in dirs}:
                refused.pop(name)
            self._state = RepositoryState(models=models, default_name=default, refused=refused)
            if default != old.default_name:
                log.info("default model: %s", default)
            return ReloadReport(loaded=tuple(loaded), removed=tuple(removed), failed=tuple(failed))


def _choose_default(models: Mapping[str, Any], override: str, quiet: bool = False) -> str:
    if override:
        if override not in models:
            raise RepositoryError(
                f"--default-model {override!r} is not a loaded bundle (loaded: {sorted(models)})"
            )
        return override
    marked = [n for n, m in models.items() if m.bundle.is_default]
    if len(marked) > 1 and not quiet:
        log.warning("several bundles set default: true (%s); using %s", marked, marked[0])
    if marked:
        return marked[0]
    first = next(iter(models))
    if not quiet:
        log.warning("no loaded bundle sets default: true; using %s", first)
    return first
