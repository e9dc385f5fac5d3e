"""The documentation: it builds strictly, its code runs as written, and it reads as a user's page, not a lab notebook."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

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
               r"|\b(development|shared|project's|lent) machines?\b|\bthis (2-core )?machine\b"),
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


# ---------------------------------------------------------------------------------------------
# every Python block of the docs and README runs as written; the tutorial's commands too

def _fences(text: str):
    """(language, code) of every fenced block, in order."""
    import re

    return [(m.group(1), m.group(2)) for m in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.M | re.S)]


def _pages_with_code():
    return [p for p in _user_pages() if p.name != "tutorial.md"  # run whole, commands included, below
            and any(lang == "python" for lang, _ in _fences(p.read_text()))]


@pytest.fixture
def beside_shared(tmp_path, monkeypatch):
    """A working folder whose ../shared is the project's shared data, as the docs assume."""
    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "shared").symlink_to(REPO.parent / "shared")
    monkeypatch.chdir(work)
    return work


def _run_page(page, run_commands: bool):
    import shlex

    import matplotlib

    matplotlib.use("Agg")
    from selfinterp.cli import main

    ns: dict = {"__name__": "__docs__"}
    for i, (lang, code) in enumerate(_fences(page.read_text())):
        if lang == "python":
            exec(compile(code, f"{page.name}, code block {i + 1}", "exec"), ns)
        elif lang == "bash" and run_commands:
            for line in code.splitlines():
                if line.startswith("selfinterp "):
                    assert main(shlex.split(line)[1:]) == 0, line


@pytest.mark.parametrize("page", _pages_with_code(), ids=lambda p: str(p.relative_to(REPO)))
def test_python_blocks_run_as_written(page, beside_shared, capsys):
    _run_page(page, run_commands=False)


def test_tutorial_runs_as_written(beside_shared, capsys):
    _run_page(REPO / "docs" / "tutorial.md", run_commands=True)
    out = capsys.readouterr().out
    assert "cheapest design with power >= 0.8" in out and "identical weights: True" in out
    assert (beside_shared / "power.png").stat().st_size > 10_000
    assert (beside_shared / "figure2.png").stat().st_size > 10_000


def test_local_server_recipe_file_is_a_valid_experiment(beside_shared):
    """docs/llm.md's native.toml, placed as the page says, is an experiment the
    runner accepts (tests/llm/test_real_llm.py runs the same sizes for real)."""
    from selfinterp.llm.config import load_experiment

    (block,) = [code for lang, code in _fences((REPO / "docs" / "llm.md").read_text())
                if lang == "toml" and code.startswith("# native.toml")]
    path = beside_shared / "native.toml"
    path.write_text(block)
    exp = load_experiment(path, base_url="http://127.0.0.1:8080/v1", model="smollm2")
    assert exp.catalog.is_file() and exp.n_instilled == 2 and not exp.finetune


def test_every_selfinterp_command_in_the_docs_parses(capsys):
    """The commands the docs and README show (in bash blocks) name commands and
    options that exist: a renamed or removed flag fails here.  They are parsed,
    not run (several run for minutes or call a paid API); the tutorial's run above.
    An input file the page's reader would have made (a calibration, a price
    table) is missing here: only that error is let through."""
    import shlex

    from selfinterp.cli import build_parser

    parser = build_parser()
    seen = 0
    for page in _user_pages():
        for lang, code in _fences(page.read_text()):
            if lang not in ("bash", "sh", "console"):
                continue
            for line in code.replace("\\\n", " ").splitlines():
                line = line.lstrip("$ ").split(" #", 1)[0].split(" && ")[-1].split(" & ")[0].strip()
                if not line.startswith("selfinterp "):
                    continue
                try:
                    parser.parse_args(shlex.split(line)[1:])
                except SystemExit:
                    err = capsys.readouterr().err
                    if not err.rstrip().endswith(": no such file"):
                        pytest.fail(f"{page.relative_to(REPO)}: {line}\n{err}")
                seen += 1
    assert seen >= 20  # the check reads the docs' commands at all


def test_readme_test_command_is_what_ci_runs():
    """The README's second command is the line .ci/run runs, to the letter (README opens with exactly two)."""
    blocks = [code.strip() for lang, code in _fences((REPO / "README.md").read_text()) if lang == "bash"]
    ci = [line for line in (REPO / ".ci" / "run").read_text().splitlines() if line.startswith("python3 -m venv")]
    assert len(ci) == 1 and blocks[1] == ci[0]
    assert blocks[0].startswith("python3 -m venv .venv && ") and blocks[0].endswith("selfinterp study")
