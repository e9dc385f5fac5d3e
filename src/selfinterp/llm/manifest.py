"""The run manifest: what was run, with what, and where each stage stands.

A JSON file in the output directory, rewritten atomically after every change
(a job id is recorded the moment the server returns it).  It holds package and
SDK versions, seeds, file hashes, job and batch ids, the hyperparameters the
jobs really used and the price table version; never the API key.
"""

from __future__ import annotations

import hashlib
import json
import platform
import secrets
from pathlib import Path

from ..errors import InputError

__all__ = ["Manifest", "sha256_file", "MANIFEST_FORMAT"]

MANIFEST_FORMAT = 1


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def package_versions(packages) -> dict:
    """{package: installed version, or None where it is not installed}."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in packages:
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def _versions() -> dict:
    out = {"python": platform.python_version(), **package_versions(("selfinterp", "openai", "numpy", "quicktok-v1"))}
    from .._version import __version__

    out["selfinterp"] = __version__
    return out


class Manifest:
    """The manifest of one experiment's output directory.

    Parameters
    ----------
    path : path-like
    fingerprint : str
        Identifies the experiment (its settings); a manifest written for another
        fingerprint raises :class:`InputError` rather than mixing two experiments.
    """

    def __init__(self, path, fingerprint: str, *, name: str):
        self.path = Path(path)
        if self.path.exists():
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise InputError(f"{self.path}: manifest is not valid JSON ({exc.msg}, line {exc.lineno})") from None
            if data.get("format") != MANIFEST_FORMAT:
                raise InputError(f"{self.path}: manifest format {data.get('format')!r}, expected {MANIFEST_FORMAT}")
            if data.get("fingerprint") != fingerprint:
                raise InputError(
                    f"{self.path}: this output directory belongs to another experiment "
                    f"({data.get('name')!r}, fingerprint {str(data.get('fingerprint'))[:12]}; "
                    f"now {name!r}, {fingerprint[:12]}); use another output directory")
            self.data = data
            self.data.setdefault("runs", []).append(_versions())
            self.data.setdefault("run_id", secrets.token_hex(8))
        else:
            self.data = {"format": MANIFEST_FORMAT, "name": name, "fingerprint": fingerprint,
                         "versions": _versions(), "runs": [], "stages": {}, "files": {},
                         # tags this output directory's jobs and batches on the server (see jobs.create_once)
                         "run_id": secrets.token_hex(8)}
        self.save()

    @property
    def run_id(self) -> str:
        return self.data["run_id"]

    @property
    def stages(self) -> dict:
        return self.data["stages"]

    def stage(self, name: str) -> dict:
        return self.data["stages"].setdefault(name, {})

    def record_file(self, path, root) -> str:
        digest = sha256_file(path)
        self.data["files"][str(Path(path).relative_to(root))] = digest
        self.save()
        return digest

    def save(self) -> None:
        tmp = self.path.with_name(self.path.name + ".part")
        tmp.write_text(json.dumps(self.data, indent=2, sort_keys=True), encoding="utf-8")
        tmp.replace(self.path)
