"""Optional tqdm progress bars (tqdm is a dependency; disabled bars print nothing)."""

from __future__ import annotations

from collections.abc import Mapping

from tqdm.auto import tqdm

ProgressOption = bool | Mapping[str, object]


def progress_bar(progress: ProgressOption, total: int | None, desc: str, unit: str) -> tqdm:
    """A tqdm bar; `progress` may be True/False or a dict of tqdm keyword arguments."""
    kwargs: dict[str, object] = {
        "total": total,
        "desc": desc,
        "unit": unit,
        "disable": not progress,
        "dynamic_ncols": True,
    }
    if isinstance(progress, Mapping):
        kwargs.update(progress)
    return tqdm(**kwargs)
