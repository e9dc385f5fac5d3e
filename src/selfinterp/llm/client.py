"""Talking to an OpenAI-compatible server through the ``openai`` client, with the request cache.

The API key is read from ``OPENAI_API_KEY`` only and handed to the client; it
is never stored, logged or written.  Retries (429 with retry-after, 5xx,
timeouts, dropped connections) are the client's own; an error it does not
retry (400, 401, 403, 404...) stops the stage with the server's message, after
every response already received has been stored.
"""

from __future__ import annotations

import asyncio
import os
from typing import Sequence

from ..errors import InputError
from .cache import RequestCache, request_key

__all__ = ["LLMError", "api_key", "make_client", "Requester", "CHAT"]

CHAT = "/v1/chat/completions"
# servers such as llama.cpp's accept any key; the client insists on one being set
_PLACEHOLDER_KEY = "not-needed-by-local-servers"


class LLMError(RuntimeError):
    """The server refused or failed a request; the message is the server's."""


def api_key(base_url: str | None) -> str:
    """The key from ``OPENAI_API_KEY``; required for api.openai.com, optional for other servers."""
    key = os.environ.get("OPENAI_API_KEY", "")
    if key:
        return key
    if base_url is None or "api.openai.com" in base_url:
        raise InputError("OPENAI_API_KEY is not set (the key is read from the environment only)")
    return _PLACEHOLDER_KEY


def make_client(base_url: str | None, *, max_retries: int, timeout: float, asynchronous: bool = False):
    """An ``OpenAI`` (or ``AsyncOpenAI``) client for ``base_url`` (None: OpenAI).

    An async client belongs to one event loop: make one per ``asyncio.run``.
    """
    import openai

    kw = dict(api_key=api_key(base_url), base_url=base_url, max_retries=max_retries, timeout=timeout)
    return (openai.AsyncOpenAI if asynchronous else openai.OpenAI)(**kw)


def describe_error(exc: BaseException) -> str:
    """The server's message of an ``openai`` exception, without request headers (they hold the key)."""
    import openai

    if isinstance(exc, openai.APIStatusError):
        body = exc.body
        msg = body.get("message") if isinstance(body, dict) else None
        if msg is None and isinstance(body, dict) and isinstance(body.get("error"), dict):
            msg = body["error"].get("message")
        return f"HTTP {exc.status_code}: {msg or exc.message}"
    if isinstance(exc, openai.APITimeoutError):
        return "request timed out (after the client's retries)"
    if isinstance(exc, openai.APIConnectionError):
        return f"connection failed (after the client's retries): {exc.__cause__ or exc}"
    if isinstance(exc, LLMError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class Requester:
    """Chat requests through the cache, with bounded concurrency.

    Parameters
    ----------
    client : openai.AsyncOpenAI
    cache : RequestCache
    concurrency : int
        At most this many requests in flight.
    """

    def __init__(self, client, cache: RequestCache, *, concurrency: int = 8):
        if concurrency < 1:
            raise InputError(f"concurrency must be at least 1, got {concurrency}")
        self.client = client
        self.cache = cache
        self.concurrency = concurrency
        self.n_sent = 0

    async def _one(self, body: dict, key: str, sem: asyncio.Semaphore, stop: list) -> dict | None:
        async with sem:
            if stop:
                return None
            try:
                resp = await self.client.chat.completions.create(**body)
            except Exception as exc:  # every failure stops the stage; the first one is reported
                stop.append(exc)
                return None
            if not hasattr(resp, "model_dump"):  # a 200 whose body is not JSON (an HTML page, plain text)
                stop.append(LLMError(f"request {key[:12]} to {body.get('model')!r}: the reply is not JSON "
                                     f"({str(resp)[:120]!r})"))
                return None
            data = resp.model_dump(mode="json", exclude_unset=True)
            if not isinstance(data.get("choices"), list) or not data["choices"]:
                stop.append(LLMError(f"request {key[:12]}: malformed reply without choices: {str(data)[:300]}"))
                return None
            # stored before the slot is released: what was received is never lost
            self.cache.put(key, CHAT, body, data)
            self.n_sent += 1
            return data

    async def chat_many(self, bodies: Sequence[dict], *, desc: str = "requests", keys: Sequence[str] | None = None,
                        known: Sequence[dict | None] | None = None) -> list[dict]:
        """Responses (as dicts) for ``bodies``, from the cache where present, else from the server.

        ``keys``: the bodies' :func:`request_key` where the caller has them already; ``known``: their
        responses already looked up in the cache (None where absent), so the cache is not asked again.
        """
        from tqdm.auto import tqdm

        keys = list(keys) if keys is not None else [request_key(CHAT, b) for b in bodies]
        out: list[dict | None] = list(known) if known is not None else self.cache.get_many(keys)
        if len(keys) != len(bodies) or len(out) != len(bodies):
            raise ValueError("keys and known must have one entry per body")
        todo = [i for i, r in enumerate(out) if r is None]
        if not todo:
            return out  # type: ignore[return-value]
        sem = asyncio.Semaphore(self.concurrency)
        stop: list = []
        bar = tqdm(total=len(bodies), initial=len(bodies) - len(todo), desc=desc, unit="req", leave=False)

        async def run(i):
            out[i] = await self._one(bodies[i], keys[i], sem, stop)
            bar.update(out[i] is not None)

        try:
            await asyncio.gather(*(run(i) for i in todo))
        finally:
            bar.close()
        if stop:
            missing = sum(r is None for r in out)
            raise LLMError(f"stage {desc}: {describe_error(stop[0])}; {len(bodies) - missing} of {len(bodies)} "
                           "responses are stored, a restart asks only for the rest")
        return out  # type: ignore[return-value]
