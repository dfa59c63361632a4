"""The image requirement files (deploy/requirements-<target>.txt) as parsed requirements."""

from __future__ import annotations

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support.server import REPO


def pins(target: str) -> dict[str, Requirement]:
    """deploy/requirements-<target>.txt as {canonical name: requirement}."""
    reqs = {}
    for line in (REPO / "deploy" / f"requirements-{target}.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            req = Requirement(line)
            reqs[canonicalize_name(req.name)] = req
    return reqs


def pinned_version(req: Requirement) -> str:
    """The X of `name==X`; fails for anything but one exact pin."""
    specs = list(req.specifier)
    assert len(specs) == 1 and specs[0].operator == "==", f"{req} is not pinned with =="
    return specs[0].version
