"""The documentation builds strictly: a broken reference or page fails the suite."""

from __future__ import annotations

import shutil
import subprocess
import sys

from conftest import REPO


def test_mkdocs_strict_build(tmp_path):
    mkdocs = shutil.which("mkdocs") or [sys.executable, "-m", "mkdocs"]
    cmd = ([mkdocs] if isinstance(mkdocs, str) else mkdocs) + ["build", "--strict", "-d", str(tmp_path / "site")]
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert (tmp_path / "site" / "index.html").is_file()


# What a user's page must not contain: the lab notebook of how it was built.
# Each pattern is (name, regex); a hit names the file, line and text.
_DIARY = [
    ("a session", r"\bsessions?\b"),
    ("a lent machine", r"\blent\b|\bborrowed (machine|GPU)"),
    ("a host's load", r"\bload average|\bloadavg\b|\bbusy neighbour"),
    ("a host", r"\b(AVX2|AVX-512|this|another|shared|development|lent) host\b"
               r"|\b(development|shared|project's|lent|GPU) machines?\b|\bthis (2-core )?machine\b"),
    ("a commit hash", r"\bcommits? `?[0-9a-f]{7,40}\b|(?<![\w./-])(?=[0-9a-f]*[0-9])(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}(?![\w-])"),
    ("the date or time of a run", r"(?<![\w-])20\d\d-\d\d-\d\d(?![\w-])|\brun of\b|\bruns of\b"),
    ("another engineer", r"\banother (engineer|agent)|\bother agents\b"),
]


def diary_lines(text: str):
    """(name, line number, line) of every line of ``text`` that reads as a measurement diary."""
    import re

    pats = [(name, re.compile(rx, re.IGNORECASE)) for name, rx in _DIARY]
    return [(name, i, line) for i, line in enumerate(text.splitlines(), 1)
            for name, rx in pats if rx.search(line)]


def _user_pages():
    return sorted((REPO / "docs").rglob("*.md")) + [REPO / "README.md", REPO / "benchmarks" / "README.md"]


def test_user_pages_hold_no_measurement_diary():
    hits = [f"{p.relative_to(REPO)}:{i}: {name}: {line.strip()}"
            for p in _user_pages() for name, i, line in diary_lines(p.read_text())]
    assert not hits, "\n".join(hits)


def test_diary_check_catches_what_it_is_for():
    """The check itself: each kind of diary line is caught, and the pages'
    ordinary words (model names with dates, seeds, 'on the host' for a GPU's
    host) are not."""
    caught = [
        "Measured in the seventh session.",
        "this session was not lent a device",
        "at load average 0.9",
        "on the AVX2 host, three runs",
        "commit 206c5f0 made it faster",
        "(kernel as at 206c5f0)",
        "Run of 2026-11-27 03:21",
        "with another engineer's benchmark running",
        "On the 2-core development machine",
    ]
    for line in caught:
        assert diary_lines(line), line
    fine = [
        "selfinterp replicate DIR --model gpt-4o-2024-08-06",
        "seed = 20250601",
        "the host settles the undecided contexts",
        "a SHA-256 of the file: `sha256`",
        "max |w| = 100, attr1 .. attr5, deadbeef",
    ]
    for line in fine:
        assert not diary_lines(line), line
