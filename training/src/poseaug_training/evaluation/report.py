"""Evaluation tables as JSON and markdown (per action, then the average)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_json(path: Path, results: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, sort_keys=True))


def markdown_table(results: dict[str, dict[str, Any]], title: str = "") -> str:
    """One column pair (MPJPE, PA-MPJPE) per input source, one row per action, mm."""
    sources = list(results)
    actions = sorted({a for r in results.values() for a in r["per_action"]})
    head = "| action | " + " | ".join(f"{s} MPJPE | {s} PA-MPJPE" for s in sources) + " |"
    sep = "|---|" + "---:|---:|" * len(sources)
    rows = [head, sep]
    for a in actions:
        cells = []
        for s in sources:
            pa = results[s]["per_action"].get(a)
            cells += [f"{pa['mpjpe']:.1f}", f"{pa['pa_mpjpe']:.1f}"] if pa else ["-", "-"]
        rows.append(f"| {a} | " + " | ".join(cells) + " |")
    avg = []
    for s in sources:
        avg += [f"**{results[s]['mpjpe_mm']:.1f}**", f"**{results[s]['pa_mpjpe_mm']:.1f}**"]
    rows.append("| **average** | " + " | ".join(avg) + " |")
    text = "\n".join(rows) + "\n"
    return (f"### {title}\n\n" if title else "") + text
