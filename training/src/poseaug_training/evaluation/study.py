"""Table S1 over seeds: twin, augmentation without feedback and PoseAug on every stand-in.

`wild-eval` writes one evaluation.json per model; a study names its models
`<row>_seed<k>` (for example `twin_seed0`, `poseaug_seed2`) and evaluates each setting (the
full training set, the held-out actions, S1 alone) into its own folder. `study_table` reads
them all back and gives, per setting and test, each row's mean and standard deviation over its
seeds and its change against the twin; `plot_study` draws every seed's error per test.
"""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path

_SEED = re.compile(r"^(?P<row>.+)_seed(?P<seed>\d+)$")


def read_study(folders: dict[str, Path]) -> dict[str, dict[str, dict[str, dict[int, float]]]]:
    """{setting: {test: {row: {seed: MPJPE mm}}}} from `<folder>/<row>_seed<k>/evaluation.json`."""
    study: dict[str, dict[str, dict[str, dict[int, float]]]] = {}
    for setting, folder in folders.items():
        for path in sorted(Path(folder).glob("*/evaluation.json")):
            match = _SEED.match(path.parent.name)
            if match is None:
                continue
            results = json.loads(path.read_text())["results"]
            for test, result in results.items():
                rows = study.setdefault(setting, {}).setdefault(test, {})
                rows.setdefault(match["row"], {})[int(match["seed"])] = result["mpjpe_mm"]
    return study


def _stats(values: dict[int, float]) -> tuple[float, float]:
    v = list(values.values())
    return statistics.fmean(v), statistics.stdev(v) if len(v) > 1 else 0.0


def study_table(study: dict, rows: tuple[str, ...], baseline: str = "twin") -> str:
    """Markdown: one line per (setting, test), a `mean +- sd (n)` cell per row, and each row's
    change against `baseline` (negative: less error)."""
    head = (
        "| setting | test | "
        + " | ".join(rows)
        + " | "
        + " | ".join(f"{r} vs {baseline}" for r in rows if r != baseline)
    )
    lines = [head + " |", "|---|---|" + "---:|" * (2 * len(rows) - 1)]
    for setting, tests in study.items():
        for test, by_row in tests.items():
            cells, changes = [], []
            base = _stats(by_row[baseline])[0] if baseline in by_row else None
            for row in rows:
                if row not in by_row:
                    cells.append("-")
                    continue
                mean, sd = _stats(by_row[row])
                cells.append(f"{mean:.1f} ± {sd:.1f} ({len(by_row[row])})")
            for row in rows:
                if row == baseline:
                    continue
                if row in by_row and base:
                    changes.append(f"{(_stats(by_row[row])[0] - base) / base:+.1%}")
                else:
                    changes.append("-")
            lines.append(f"| {setting} | {test} | " + " | ".join(cells + changes) + " |")
    return "MPJPE mm, mean ± standard deviation over seeds (n)\n\n" + "\n".join(lines) + "\n"


def plot_study(study: dict, rows: tuple[str, ...], path: Path) -> None:
    """Every seed's MPJPE per (setting, test) and row: one panel per setting."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings = list(study)
    fig, axes = plt.subplots(1, len(settings), figsize=(5 * len(settings), 4.2), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, setting in zip(axes[0], settings, strict=True):
        tests = list(study[setting])
        for i, row in enumerate(rows):
            for j, test in enumerate(tests):
                seeds = study[setting][test].get(row, {})
                x = j + (i - (len(rows) - 1) / 2) * 0.18
                ax.scatter(
                    [x] * len(seeds),
                    list(seeds.values()),
                    color=colours[i],
                    s=18,
                    label=row if j == 0 else None,
                )
                if seeds:
                    ax.hlines(_stats(seeds)[0], x - 0.07, x + 0.07, color=colours[i])
        ax.set_xticks(range(len(tests)), tests, rotation=20, ha="right")
        ax.set_title(setting)
        ax.set_ylabel("MPJPE (mm)")
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
