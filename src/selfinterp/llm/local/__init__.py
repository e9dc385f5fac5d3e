"""The local backend: the whole experiment on an open-weight model in this process.

``backend = "local"`` in the experiment file makes ``selfinterp run`` fine-tune
LoRA adapters with PEFT and transformers' Trainer and read choices from the
model's logits, through the same stages, cache, manifest and transcripts as the
server path (:class:`~selfinterp.llm.local.client.LocalClient` answers the
openai client's calls in process).  Needs the ``local`` extra; nothing here
imports torch until a model is loaded.
"""

from .settings import LocalSettings, parse_local

__all__ = ["LocalSettings", "parse_local", "make_local_client"]


def make_local_client(exp, *, echo=print, engine=None):
    """The :class:`LocalClient` of an experiment whose backend is local (loads the tokenizer, checks it)."""
    from .client import LocalClient

    return LocalClient(exp, echo=echo, engine=engine)
