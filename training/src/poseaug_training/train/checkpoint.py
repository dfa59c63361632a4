"""Resumable checkpoints: model, optimizer, scheduler and every RNG state, written atomically.

Restoring all RNG states is what makes kill-and-resume give the same weights as an
uninterrupted run (dropout and noise draw from them).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write to a temporary file, then rename: a kill never leaves a half-written checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    return torch.load(Path(path), map_location=device, weights_only=False)


def load_estimator(path: Path) -> tuple[Any, dict[str, Any]]:
    """(the checkpoint's lifter in eval mode, the checkpoint's state)."""
    from poseaug_training.models import build_estimator, estimator_options

    state = load_checkpoint(path)
    cfg = state["config"]
    model = build_estimator(cfg["estimator"], **estimator_options(cfg))
    model.load_state_dict(state["estimator"])
    model.eval()
    return model, state


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
