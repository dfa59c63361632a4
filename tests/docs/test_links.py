"""Every relative link (and #anchor) in the README, docs/, examples/ and models/ resolves, and
the README stays a newcomer's page."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import REPO

README_MAX_LINES = 150
FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
CODE_SPAN = re.compile(r"(`+)(?!`).*?(?<!`)\1", re.S)
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$", re.M)


def documents() -> list[Path]:
    found = [REPO / "README.md", REPO / "models" / "README.md"]
    for folder in ("docs", "examples"):
        found += sorted((REPO / folder).rglob("*.md"))
    return found


def prose(text: str) -> str:
    """The text without fenced code blocks and code spans, where links are not links."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, and
    -1, -2 ... on repeats."""
    seen: Counter[str] = Counter()
    out = set()
    for heading in HEADING.findall(FENCE.sub("", path.read_text())):
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
        slug = re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")
        out.add(slug if not seen[slug] else f"{slug}-{seen[slug]}")
        seen[slug] += 1
    return out


def broken_links(path: Path, root: Path = REPO) -> list[str]:
    """Relative links in the Markdown file `path` whose file, folder or anchor is missing."""
    problems = []
    for target in LINK.findall(prose(path.read_text())):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto: ...
            continue
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / file_part).resolve() if file_part else path
        if not resolved.is_relative_to(root) or not resolved.exists():
            problems.append(f"{path.relative_to(root)}: {target} (no such file)")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            problems.append(f"{path.relative_to(root)}: {target} (no such heading)")
    return problems


def test_readme_is_a_short_page() -> None:
    lines = (REPO / "README.md").read_text().count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines (at most {README_MAX_LINES})"


def test_docs_by_topic_exist_and_are_linked_from_the_readme() -> None:
    readme = (REPO / "README.md").read_text()
    for topic in ("serving", "clients", "training", "results", "deployment", "architecture"):
        assert (REPO / "docs" / f"{topic}.md").is_file()
        assert f"(docs/{topic}.md)" in readme


@pytest.mark.parametrize("path", documents(), ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(path: Path) -> None:
    assert broken_links(path) == []


def test_the_checker_finds_broken_links_and_anchors(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other page\n## Twice\n## Twice\n")
    (tmp_path / "img.png").write_bytes(b"")
    page = tmp_path / "page.md"
    page.write_text(
        "# The page\n[ok](other.md) [ok](other.md#other-page) [ok](other.md#twice-1)\n"
        "![ok](img.png) [ok](#the-page) [web](https://example.org/x) `[code](nope.md)`\n"
        "[bad](missing.md) [bad](other.md#nowhere) [bad](#twice) [bad](../outside.md)\n"
        "```\n[in a block](nope.md)\n```\n"
    )
    assert broken_links(page, tmp_path) == [
        "page.md: missing.md (no such file)",
        "page.md: other.md#nowhere (no such heading)",
        "page.md: #twice (no such heading)",
        "page.md: ../outside.md (no such file)",
    ]
