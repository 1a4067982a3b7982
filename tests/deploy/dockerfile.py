"""A small Dockerfile reader for the static tests (no Docker engine needed)."""
from __future__ import annotations

import fnmatch
import json
import shlex
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Instruction:
    stage: int          # index of the FROM it belongs to (-1: before the first FROM)
    cmd: str            # upper-case keyword
    args: str           # the rest, continuation lines joined

    def words(self) -> list[str]:
        if self.args.lstrip().startswith("["):
            return json.loads(self.args)
        return shlex.split(self.args)


def parse(text: str) -> list[Instruction]:
    out, stage, buf = [], -1, ""
    for raw in text.splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if buf and line.startswith("#"):
            continue                                   # comment lines inside a continuation
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        line, buf = buf + line, ""
        cmd, _, args = line.partition(" ")
        cmd = cmd.upper()
        if cmd == "FROM":
            stage += 1
        out.append(Instruction(stage, cmd, args.strip()))
    assert not buf, "the Dockerfile ends inside a continuation line"
    return out


def env_of(instrs: list[Instruction], stage: int) -> dict[str, str]:
    """ENV KEY=VALUE pairs of one stage (the KEY=VALUE form only)."""
    env: dict[str, str] = {}
    for i in instrs:
        if i.stage == stage and i.cmd == "ENV":
            for word in shlex.split(i.args):
                key, eq, value = word.partition("=")
                assert eq, f"ENV without '=': {i.args!r}"
                env[key] = value
    return env


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore drops ``path`` (a repository-relative path), last match wins."""
    ignored = False
    parts = Path(path).parts
    prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    for pat in patterns:
        neg = pat.startswith("!")
        pat = pat.lstrip("!").strip("/")
        for p in prefixes:
            if fnmatch.fnmatch(p, pat) or (pat.startswith("**/") and fnmatch.fnmatch(p.split("/")[-1], pat[3:])):
                ignored = not neg
                break
    return ignored


def read_dockerignore(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
