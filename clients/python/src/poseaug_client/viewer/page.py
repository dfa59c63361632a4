"""One self-contained HTML page: the viewer's script and its data inlined, nothing fetched, so
the file works offline, from disk, attached to a mail or a ticket."""

from __future__ import annotations

import html
import json
from importlib import resources
from pathlib import Path
from string import Template

_PAGE = Template("""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>$title</title>
<style>
html, body { margin: 0; height: 100%; font: 14px sans-serif; color: #222; background: #fff; }
body { display: flex; flex-direction: column; }
header { padding: 6px 12px; border-bottom: 1px solid #ddd; }
header h1 { font-size: 15px; margin: 0; display: inline; }
header span { color: #666; margin-left: 12px; }
main { flex: 1; display: flex; min-height: 0; }
canvas { flex: 1; min-width: 0; touch-action: none; }
#view3d { cursor: grab; }
#view2d { flex: 0 0 36%; border-left: 1px solid #ddd; }
footer { display: flex; align-items: center; gap: 8px; padding: 6px 12px;
  border-top: 1px solid #ddd; }
footer input[type=range] { flex: 1; }
.key { display: inline-block; width: 10px; height: 10px; border-radius: 5px;
  margin: 0 3px 0 10px; }
.hollow { border: 2px solid #4d4d4d; width: 6px; height: 6px; }
</style>
</head>
<body>
<header><h1>$title</h1><span>$subtitle</span></header>
<main><canvas id="view3d"></canvas>$view2d</main>
<footer>
<button id="prev" type="button">&#9664;</button>
<button id="play" type="button">Play</button>
<button id="next" type="button">&#9654;</button>
<input id="step" type="range" min="0" max="0" value="0" aria-label="frame">
<span id="label"></span>
<span><span class="key" style="background:#1f6fd1"></span>left<span class="key"
 style="background:#e4572e"></span>right<span class="key hollow"></span>inferred</span>
</footer>
<script type="application/json" id="poseaug-data">$data</script>
<script>
$script
</script>
</body>
</html>
""")

#: Drag to orbit, wheel to zoom: told on every page.
HELP = "drag to turn, wheel to zoom, arrow keys step"


def render(scene: dict[str, object], title: str, subtitle: str = "") -> str:
    """The page of a scene from scene.py."""
    data = json.dumps(scene, separators=(",", ":")).replace("<", "\\u003c")  # no tag inside
    script = resources.files(__package__).joinpath("viewer.js").read_text(encoding="utf-8")
    return _PAGE.substitute(
        title=html.escape(title),
        subtitle=html.escape(f"{subtitle}; {HELP}" if subtitle else HELP),
        view2d='<canvas id="view2d"></canvas>' if scene["mode"] == "augment" else "",
        data=data,
        script=script,
    )


def write_page(path: Path, page: str) -> None:
    path.write_text(page, encoding="utf-8")
