"""Shared prompt prefixes: which prompts of a batch share which prefix, so that its keys and values are computed once.

The decision prompts of one context differ only at the end (the two options'
values, in both orders): the system message, the instructions and the question
are the same tokens.  :func:`plan_prefixes` sorts token sequences and splits
them into runs that share a common prefix, choosing the split that minimises
the tokens run through the model (each shared prefix once, plus every
prompt's own suffix).  The engine then computes each prefix's cache once and
runs only the suffixes (see ``Engine.iter_logprobs``).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["plan_prefixes", "common_prefix", "plan_cost"]


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """The number of leading tokens ``a`` and ``b`` share."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def plan_prefixes(seqs: Sequence[Sequence[int]], window: int = 256) -> tuple[list[int], list[int]]:
    """(order, prefix): the prompts in token order, and the length of the prefix each shares with its run.

    ``order`` lists the indices of ``seqs`` sorted by their tokens; consecutive
    prompts with the same nonzero ``prefix[i]`` whose first ``prefix[i]`` tokens
    are equal form one run (its prefix is computed once).  Every prefix leaves
    at least one token of its prompt to run (its next-token logits are read
    there); a prompt alone has prefix 0.  The runs minimise the tokens run
    (each prefix once plus every suffix) over splits of the sorted order into
    runs of at most ``window`` prompts.  Every sequence must be non-empty.
    """
    n = len(seqs)
    if any(len(s) == 0 for s in seqs):
        raise ValueError("an empty token sequence has no next-token logits")
    order = sorted(range(n), key=lambda i: tuple(seqs[i]))
    if n == 0:
        return [], []
    lens = np.array([len(seqs[i]) for i in order], dtype=np.int64)
    # c[k]: tokens shared by the k-th and (k+1)-th sorted prompts, at most both lengths - 1
    c = np.array([min(common_prefix(seqs[order[k]], seqs[order[k + 1]]), lens[k] - 1, lens[k + 1] - 1)
                  for k in range(n - 1)], dtype=np.int64)
    csum = np.concatenate([[0], np.cumsum(lens)])
    best = np.zeros(n + 1, dtype=np.int64)  # best[b]: least tokens to run the first b sorted prompts
    start = np.zeros(n + 1, dtype=np.int64)
    share = np.zeros(n + 1, dtype=np.int64)
    for b in range(1, n + 1):  # the run [a, b) ends at prompt b - 1
        lo = max(0, b - window)
        a = np.arange(lo, b)
        # run [a, b): prefix L = min(c[a .. b-2]) (0 for a single prompt)
        shared = np.zeros(b - lo, dtype=np.int64)
        if b - lo > 1:
            shared[:-1] = np.minimum.accumulate(c[lo:b - 1][::-1])[::-1]
        m = b - a
        cost = best[a] + (csum[b] - csum[a]) - (m - 1) * shared
        k = int(np.argmin(cost))  # the first minimum: ties keep the longer run
        best[b], start[b], share[b] = cost[k], lo + k, shared[k]
    prefix = [0] * n
    b = n
    while b > 0:
        a = int(start[b])
        for k in range(a, b):
            prefix[order[k]] = int(share[b]) if b - a > 1 else 0
        b = a
    return order, prefix


def plan_cost(seqs: Sequence[Sequence[int]], order: Sequence[int], prefix: Sequence[int]) -> int:
    """Tokens run by a plan: each run's prefix once, and every prompt's suffix."""
    total, prev = 0, None
    for i in order:
        p = prefix[i]
        key = (p, tuple(seqs[i][:p])) if p else None
        if p and key != prev:
            total += p
        total += len(seqs[i]) - p
        prev = key
    return total
