"""Read the Dockerfile and .dockerignore the way Docker does, for tests that cannot run Docker.

Enough of the syntax for this repository's files: line continuations, comments, stages
(`FROM image AS name`, `FROM stage`), global ARG defaults, ENV (KEY=VALUE pairs with $VAR
expansion), exec-form JSON for ENTRYPOINT/CMD/HEALTHCHECK, COPY flags. The .dockerignore
matcher follows moby's patternmatcher: `**` spans folders, the last matching line wins, `!`
re-includes, and a pattern that matches a parent folder matches everything under it.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Instruction:
    keyword: str  # upper case
    text: str  # arguments, continuations joined

    def exec_form(self) -> list[str]:
        """JSON-array arguments (ENTRYPOINT/CMD exec form)."""
        value = json.loads(self.text)
        assert isinstance(value, list) and all(isinstance(v, str) for v in value), self.text
        return value

    def flags_and_args(self) -> tuple[dict[str, str], list[str]]:
        """`--flag=value` options, then the remaining words (COPY)."""
        words = shlex.split(self.text)
        flags = {}
        while words and words[0].startswith("--"):
            key, _, value = words.pop(0)[2:].partition("=")
            flags[key] = value
        return flags, words

    def healthcheck(self) -> tuple[dict[str, str], list[str]]:
        """HEALTHCHECK options and its exec-form CMD."""
        match = re.fullmatch(r"((?:--\S+\s+)*)CMD\s+(\[.*\])", self.text)
        assert match, f"HEALTHCHECK needs the exec form: {self.text}"
        flags = dict(w[2:].partition("=")[::2] for w in match.group(1).split())
        return flags, Instruction("CMD", match.group(2)).exec_form()


@dataclass
class Stage:
    base: str
    name: str
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


@dataclass
class Dockerfile:
    global_args: dict[str, str]
    stages: list[Stage]

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(f"no stage {name!r} in the Dockerfile")

    def chain(self, name: str) -> list[Stage]:
        """The stage and the stages it is built FROM, base first."""
        stages = [self.stage(name)]
        names = {s.name for s in self.stages}
        while stages[0].base in names:
            stages.insert(0, self.stage(stages[0].base))
        return stages

    def last(self, name: str, keyword: str) -> Instruction | None:
        """The instruction in effect for a target (the last one along its chain)."""
        found = None
        for stage in self.chain(name):
            for instruction in stage.all(keyword):
                found = instruction
        return found

    def env(self, name: str, start: dict[str, str] | None = None) -> dict[str, str]:
        """Environment after the ENV instructions of a target's chain."""
        env = dict(start or {})
        for stage in self.chain(name):
            for instruction in stage.all("ENV"):
                env.update(parse_env(instruction.text, env))
        return env


def _logical_lines(text: str) -> list[str]:
    lines, current = [], ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if stripped.startswith("#"):
            continue  # comments, also inside continuations, as Docker does
        if raw.rstrip().endswith("\\"):
            current += raw.rstrip()[:-1] + " "
            continue
        current += raw
        if current.strip():
            lines.append(current.strip())
        current = ""
    if current.strip():
        lines.append(current.strip())
    return lines


def parse_dockerfile(path: Path) -> Dockerfile:
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in _logical_lines(path.read_text()):
        keyword, _, rest = line.partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "ARG" and not stages:
            key, _, value = rest.partition("=")
            global_args[key] = value
        elif keyword == "FROM":
            words = rest.split()
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else ""
            base = expand(words[0], global_args)
            stages.append(Stage(base=base, name=name))
        else:
            assert stages, f"instruction before FROM: {line}"
            stages[-1].instructions.append(Instruction(keyword, rest))
    return Dockerfile(global_args, stages)


def expand(value: str, env: dict[str, str]) -> str:
    """$VAR and ${VAR} from `env` (unknown ones become empty, as in Docker)."""
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: env.get(m.group(1) or m.group(2), ""), value)


def parse_env(text: str, env: dict[str, str]) -> dict[str, str]:
    """`ENV A=1 B="two words"` -> {"A": "1", "B": "two words"}, expanded against `env`."""
    out = {}
    for word in shlex.split(text):
        key, sep, value = word.partition("=")
        assert sep, f"only the ENV KEY=VALUE form is supported: {text}"
        out[key] = expand(value, {**env, **out})
    return out


# --- .dockerignore ----------------------------------------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out += pattern[i : end + 1]
            i = end + 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out + r"\Z")


@dataclass
class DockerIgnore:
    rules: list[tuple[bool, re.Pattern[str], str]]  # (re-include?, regex, pattern)

    @classmethod
    def read(cls, path: Path) -> DockerIgnore:
        rules = []
        for raw in path.read_text().splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            negate = line.startswith("!")
            pattern = line[1:].strip() if negate else line
            pattern = pattern.strip("/").removeprefix("./")
            rules.append((negate, _pattern_regex(pattern), pattern))
        return cls(rules)

    def excluded(self, rel_path: str) -> bool:
        """Whether a path (relative to the context, '/'-separated) stays out of the context."""
        parts = rel_path.strip("/").split("/")
        candidates = ["/".join(parts[: k + 1]) for k in range(len(parts))]
        result = False
        for negate, regex, _ in self.rules:
            if any(regex.match(c) for c in candidates):
                result = not negate
        return result

    def may_include_below(self, rel_dir: str) -> bool:
        """Whether some `!` rule could re-include a path inside an excluded folder."""
        prefix = rel_dir.strip("/") + "/"
        return any(negate and pattern.startswith(prefix) for negate, _, pattern in self.rules)


def walk_context(root: Path, ignore: DockerIgnore) -> list[str]:
    """Every file Docker would send as the build context ('/'-paths relative to `root`);
    excluded folders that no rule re-includes are not entered (virtual environments, data)."""
    sent: list[str] = []

    def visit(folder: Path) -> None:
        for path in sorted(folder.iterdir()):
            rel = path.relative_to(root).as_posix()
            if path.is_dir() and not path.is_symlink():
                if ignore.excluded(rel) and not ignore.may_include_below(rel):
                    continue
                visit(path)
            elif not ignore.excluded(rel):
                sent.append(rel)

    visit(root)
    return sent
