"""The documentation: it builds strictly, its code runs as written, and it reads as a user's page, not a lab notebook."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from llm.test_real_llm import llama_server  # noqa: F401  (a fixture: the llama.cpp server of the docs' recipe)


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
# every code block and command of the docs and README runs as written, page by page, in order:
# Python blocks are executed, a block whose first line is "# NAME.toml" (or .py, .json) is the file
# the page asks the reader to write, and every command of a shell block is run.

# A command that takes minutes as written runs with options added (argparse: the last value of an
# option wins); the page says so beside the command ("the test suite adds `OPTIONS`").
ADDED = {
    "selfinterp power --contexts 50,100 --choices 20,50 --reports 1,10 --replicates 500": "--replicates 20",
    "selfinterp power --contexts 20,50,100 --choices 20,50 --reports 1,10": "--replicates 20",
    "selfinterp power --contexts 50,100,200": "--replicates 20",
    "selfinterp power --calibration gpt4o.toml": "--replicates 20",
    "selfinterp bench-estimators --markdown": "--trials 20 --noise inf --contexts 5 --replicates 1",
    "selfinterp bench-estimators --user": "--trials 20 --noise inf --contexts 5 --replicates 1",
    "selfinterp run experiment.toml": "--dry-run",
    "selfinterp calibrate": "--tiles 2",
}

# The lines of shell blocks that are not selfinterp commands, and who runs them.
NOT_HERE = {
    "python3 -m venv": "the install: .ci/run runs it in a fresh clone (checked below against the README)",
    "pip install": "an install: .ci/run installs the same packages",
    "export OPENAI_API_KEY": "the key: the suite sets a made-up one",
    "GGUF=": "the llama.cpp recipe: the llama_server fixture starts the same server on a free port",
    "python -m llama_cpp.server": "the llama.cpp recipe: the llama_server fixture starts the same server on a free port",
    'ln -s "$GGUF"': "the tutorial's local model: its test links the same weights (tests/llm/local)",
    "vllm serve": "needs a GPU and vLLM",
    "accelerate config": "needs several GPUs",
    "accelerate launch": "needs several GPUs",
    "python benchmarks/bench_local_instill.py": "needs a GPU; tests/llm/local runs the same experiment, small",
}

# Commands for a 7B model on a GPU: tests/llm/local runs the same commands (run, checkpoints, replicate) on
# SmolLM2-135M and a tiny model, with small sizes; the page says so.
ELSEWHERE = ("selfinterp run qwen-100.toml", "selfinterp checkpoints qwen-100.toml",
             "selfinterp replicate runs/qwen-100/released")

# where a command names a server, the one the suite started (the page's port may be taken)
SERVER_URLS = ("http://127.0.0.1:8080/v1", "http://127.0.0.1:8000/v1")
DASK_SCHEDULER = "tcp://host:8786"


def _fences(text: str, headings: bool = False):
    """(language, code) of every fenced block, in order (with ``headings``: and the ## heading it falls under)."""
    import re

    out = []
    for m in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.M | re.S):
        above = re.findall(r"^## (.*)$", text[:m.start()], re.M)
        out.append((m.group(1), m.group(2), above[-1] if above else "") if headings else (m.group(1), m.group(2)))
    return out


def _shell_lines(code: str):
    """The commands of a shell block: continuations joined, prompts and comments dropped, && split."""
    for line in code.replace("\\\n", " ").splitlines():
        line = line.strip().removeprefix("$ ").split(" #", 1)[0].strip()
        if any(line.startswith(k) for k in NOT_HERE):  # an install line, && and all
            yield line
        elif line and not line.startswith("#"):
            yield from (part.strip() for part in line.split(" && "))


def _file_block(code: str):
    """The file name of a block that is a file to write (its first line is "# NAME.ext" or "# NAME.ext: ...")."""
    import re

    m = re.match(r"# ([\w./-]+\.(?:toml|py|json))(?=[:\s])", code)
    return m.group(1) if m else None


def _doc_files() -> dict:
    """name -> text of every file the docs show (blocks whose first line is "# NAME.ext"); two pages that
    show the same file show the same text."""
    out: dict = {}
    for p in _user_pages():
        for lang, code in _fences(p.read_text()):
            if lang in ("toml", "python", "json") and (name := _file_block(code)):
                assert out.setdefault(name, code) == code, f"{p.name}: {name} differs from another page's"
    return out


def _doc_pages():
    return [p for p in _user_pages() if p.name != "tutorial.md" and any(
        lang == "python" or (lang in ("bash", "sh", "console") and code.strip()) for lang, code in _fences(p.read_text()))]


def _run_page(page, *, server=None, scheduler=None, capsys=None, sections=None, files=None):
    """Run ``page``'s blocks in order in the current folder; ``server``: a callable giving the URL of the
    llama.cpp server a command names, ``scheduler`` the address of a dask scheduler (None: such a command
    fails); ``sections``: a predicate on the heading (## ...) a block falls under, to run only some;
    ``files``: text -> replacement in the files the page writes (a model path the test provides)."""
    import shlex

    import matplotlib

    matplotlib.use("Agg")
    from selfinterp.cli import main

    text = page.read_text()
    for name, code in _doc_files().items():  # a file another page shows (getting-started's experiment.toml)
        Path(name).parent.mkdir(parents=True, exist_ok=True)
        Path(name).write_text(code)
    ns: dict = {"__name__": "__docs__"}
    for i, (lang, code, heading) in enumerate(_fences(text, headings=True)):
        if sections is not None and not sections(heading):
            continue
        name = _file_block(code) if lang in ("toml", "python", "json") else None
        if name:
            for old, new in (files or {}).items():
                code = code.replace(old, new)
            Path(name).parent.mkdir(parents=True, exist_ok=True)
            Path(name).write_text(code)
        elif lang == "python":
            exec(compile(code, f"{page.name}, code block {i + 1}", "exec"), ns)
        elif lang in ("bash", "sh", "console"):
            for line in _shell_lines(code):
                if not line.startswith("selfinterp "):
                    assert any(line.startswith(k) for k in NOT_HERE), \
                        f"{page.name}: a command the suite does not run: {line} (run it here, or say in NOT_HERE who does)"
                    continue
                if line.startswith(ELSEWHERE):
                    assert "tests/llm/local" in text, f"{page.name}: {line}: say where the suite runs it"
                    continue
                argv = shlex.split(line.removesuffix(" &"))[1:]
                added = [v for k, v in ADDED.items() if line.startswith(k)]
                if added:
                    flat = " ".join(text.split())
                    assert "test suite adds" in flat and f"`{added[0]}`" in flat, \
                        f"{page.name}: {line}: the page must say that the test suite adds `{added[0]}`"
                    argv += shlex.split(added[0])
                if any(u in argv for u in SERVER_URLS) and "--dry-run" not in argv:
                    assert server is not None, f"{page.name}: {line}: needs a server"
                    argv = [server() if a in SERVER_URLS else a for a in argv]
                if DASK_SCHEDULER in argv:
                    argv = [scheduler() if a == DASK_SCHEDULER else a for a in argv]
                rc = main(argv)
                err = capsys.readouterr().err if capsys is not None else ""
                assert rc == 0, f"{page.name}: {line}: exit status {rc}\n{err}"
    return ns


@pytest.fixture
def beside_shared(tmp_path, monkeypatch):
    """A working folder whose ../shared is the project's shared data, as the docs assume."""
    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "shared").symlink_to(REPO.parent / "shared")
    monkeypatch.chdir(work)
    return work


@pytest.fixture
def with_authors_files(beside_shared):
    """The authors' catalog and roles where the experiment files of the docs name them (beside the file)."""
    data = REPO.parent / "shared" / "data" / "plunkett2025"
    for folder in (beside_shared, beside_shared / "data"):
        folder.mkdir(exist_ok=True)
        for name in ("candidate_scenarios.json", "roles.csv"):
            (folder / name).symlink_to(data / name)
    return beside_shared


@pytest.mark.parametrize("page", _doc_pages(), ids=lambda p: str(p.relative_to(REPO)))
def test_page_runs_as_written(page, with_authors_files, monkeypatch, capsys, request):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    monkeypatch.syspath_prepend(str(with_authors_files))  # a module the page writes (bench-estimators --user)
    _run_page(page, server=lambda: request.getfixturevalue("llama_server").url,
              scheduler=lambda: request.getfixturevalue("dask_scheduler"), capsys=capsys)


@pytest.fixture
def dask_scheduler():
    """A dask scheduler on loopback (TCP) with one worker thread, for the docs' --scheduler command."""
    from selfinterp.study import local_cluster

    with local_cluster(1, processes=False) as cluster:
        yield cluster.scheduler_address


LOCAL_MODEL_SECTION = "7. Run a local model in process"  # run by tests/llm/local/test_tutorial_local.py


LOCAL_SERVER_SECTION = "6. Run against a local server"


def test_tutorial_runs_as_written(beside_shared, capsys, request):
    page = REPO / "docs" / "tutorial.md"
    _run_page(page, sections=lambda heading: heading not in (LOCAL_SERVER_SECTION, LOCAL_MODEL_SECTION))
    out = capsys.readouterr().out
    assert "cheapest design with power >= 0.8" in out and "identical weights: True" in out
    assert (beside_shared / "power.png").stat().st_size > 10_000
    assert (beside_shared / "figure2.png").stat().st_size > 10_000
    # then against the llama.cpp server (skipped where it is not installed, except in CI)
    _run_page(page, server=lambda: request.getfixturevalue("llama_server").url,
              sections=lambda heading: heading == LOCAL_SERVER_SECTION)
    out = capsys.readouterr().out
    assert "8 choice requests" in out and "report calls: 2" in out


def test_local_server_recipe_file_is_a_valid_experiment(beside_shared):
    """docs/llm.md's native.toml, placed as the page says, is an experiment the runner accepts (checked
    without the server, which the page's run above needs)."""
    from selfinterp.llm.config import load_experiment

    path = beside_shared / "native.toml"
    path.write_text(_doc_files()["native.toml"])
    exp = load_experiment(path, base_url="http://127.0.0.1:8080/v1", model="smollm2")
    assert exp.catalog.is_file() and exp.n_instilled == 2 and not exp.finetune


def test_every_added_option_and_unrun_line_is_still_in_the_docs():
    """ADDED, NOT_HERE and ELSEWHERE hold nothing the docs no longer show (a stale entry would hide a new command)."""
    lines = [line for p in _user_pages() + [REPO / "docs" / "tutorial.md"] for lang, code in _fences(p.read_text())
             if lang in ("bash", "sh", "console") for line in _shell_lines(code)]
    for key in [*ADDED, *NOT_HERE, *ELSEWHERE]:
        assert any(line.startswith(key) for line in lines), key


def test_readme_test_command_is_what_ci_runs():
    """The README's second command is the line .ci/run runs, to the letter (README opens with exactly two)."""
    blocks = [code.strip() for lang, code in _fences((REPO / "README.md").read_text()) if lang == "bash"]
    ci = [line for line in (REPO / ".ci" / "run").read_text().splitlines() if line.startswith("python3 -m venv")]
    assert len(ci) == 1 and blocks[1] == ci[0]
    assert blocks[0].startswith("python3 -m venv .venv && ") and blocks[0].endswith("selfinterp study")
