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
