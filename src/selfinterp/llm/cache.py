"""A persistent request cache: one SQLite row per request, keyed by the request's content.

Every response is committed the moment it arrives, so a crashed or killed run
loses nothing it received and, restarted, asks (and pays for) no query twice.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from pathlib import Path

from ..errors import InputError

__all__ = ["RequestCache", "CacheVersionError", "request_key", "CACHE_FORMAT"]

CACHE_FORMAT = 1


class CacheVersionError(InputError):
    """The cache file was written by another version of the cache format."""


def request_key(endpoint: str, body: dict) -> str:
    """SHA-256 of the canonical JSON of (endpoint, body): the same request, the same key."""
    blob = json.dumps({"endpoint": endpoint, "body": body}, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class RequestCache:
    """SQLite cache of requests and their responses.

    Parameters
    ----------
    path : path-like
        The database file; created if missing.  A file of another format
        version raises :class:`CacheVersionError` naming both versions.
    """

    def __init__(self, path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            # a killed process loses at most the transaction in flight, never a committed row
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            row = self._db.execute("SELECT value FROM meta WHERE key='format'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise InputError(f"{self.path}: not a selfinterp request cache ({exc})") from None
        if row is None:
            n_tables = self._db.execute("SELECT count(*) FROM sqlite_master WHERE type='table'").fetchone()[0]
            if n_tables > 1:
                raise InputError(f"{self.path}: an SQLite file that is not a selfinterp request cache")
            self._db.execute("INSERT INTO meta VALUES ('format', ?)", (str(CACHE_FORMAT),))
        elif row[0] != str(CACHE_FORMAT):
            raise CacheVersionError(
                f"{self.path}: request cache format {row[0]}, this selfinterp reads format {CACHE_FORMAT}; "
                "keep the file with the selfinterp version that wrote it, or start a new output directory")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, endpoint TEXT NOT NULL, "
            "request TEXT NOT NULL, response TEXT NOT NULL, source TEXT NOT NULL, created REAL NOT NULL)")

    def get(self, key: str) -> dict | None:
        row = self._db.execute("SELECT response FROM responses WHERE key=?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def get_many(self, keys) -> list[dict | None]:
        """The stored response of each of ``keys`` (None where absent), in order, in few queries."""
        keys = list(keys)
        found: dict[str, str] = {}
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            q = f"SELECT key, response FROM responses WHERE key IN ({','.join('?' * len(chunk))})"
            found.update(self._db.execute(q, chunk).fetchall())
        return [None if k not in found else json.loads(found[k]) for k in keys]

    def has(self, key: str) -> bool:
        return self._db.execute("SELECT 1 FROM responses WHERE key=?", (key,)).fetchone() is not None

    def put(self, key: str, endpoint: str, body: dict, response: dict, source: str = "sync") -> None:
        """Store a response (committed at once); a key already stored is kept as it is."""
        self._db.execute("INSERT OR IGNORE INTO responses VALUES (?, ?, ?, ?, ?, ?)",
                         (key, endpoint, json.dumps(body, sort_keys=True), json.dumps(response), source,
                          time.time()))

    def delete(self, keys) -> int:
        """Forget the responses of ``keys`` (they are asked again); returns how many were stored."""
        n = 0
        for k in keys:
            n += self._db.execute("DELETE FROM responses WHERE key=?", (k,)).rowcount
        return n

    def __len__(self) -> int:
        return self._db.execute("SELECT count(*) FROM responses").fetchone()[0]

    def usage(self) -> list[tuple[str, str, int, int]]:
        """(model, source, prompt tokens, completion tokens) summed over every stored response."""
        out: dict[tuple[str, str], list[int]] = {}
        for resp, source in self._db.execute("SELECT response, source FROM responses"):
            r = json.loads(resp)
            u = r.get("usage") or {}
            acc = out.setdefault((r.get("model", "?"), source), [0, 0])
            acc[0] += int(u.get("prompt_tokens") or 0)
            acc[1] += int(u.get("completion_tokens") or 0)
        return [(m, s, p, c) for (m, s), (p, c) in sorted(out.items())]

    def close(self) -> None:
        self._db.close()
