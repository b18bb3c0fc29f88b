"""The repository stands on its own: nothing a user gets with a clone points at files outside it
(the project's working notes `../shared/*.md` were never part of the repo)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Everything a user reads or runs: code, docs, benchmarks, tests, the build files.
SCANNED = ("src", "docs", "benchmarks", "tests", "scripts", "README.md", "Makefile", "pyproject.toml")
SUFFIXES = {".py", ".md", ".txt", ".toml", ".sh", ".xml", ".json", ".cfg", ".ini", ".html", ""}
OUTSIDE = re.compile(r"\.\./shared|\bshared/[A-Z]+\.md|\b(?:FACTS|STYLE|ARCHITECTURE)\.md")


def _files() -> list[Path]:
    out: list[Path] = []
    for name in SCANNED:
        p = ROOT / name
        if p.is_file():
            out.append(p)
        elif p.is_dir():
            out.extend(
                f for f in p.rglob("*") if f.is_file() and f.suffix in SUFFIXES and ".egg-info" not in str(f)
            )
    return [f for f in out if "__pycache__" not in f.parts and f != Path(__file__).resolve()]


def test_nothing_points_outside_the_repository():
    hits = [
        f"{f.relative_to(ROOT)}:{i}: {line.strip()}"
        for f in _files()
        for i, line in enumerate(f.read_text(errors="replace").splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert not hits, "references to files users do not have:\n" + "\n".join(hits)


def test_the_pattern_catches_what_it_should():
    for text in ("see ../shared/FACTS.md", "(FACTS.md)", "STYLE.md §8", "shared/ARCHITECTURE.md"):
        assert OUTSIDE.search(text), text
    for text in ("docs/platform.md#threads", "docs/measured.md", "a shared CPU"):
        assert not OUTSIDE.search(text), text
