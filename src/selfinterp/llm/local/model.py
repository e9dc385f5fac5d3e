"""Finding, checking and loading an open-weight model for the local backend.

Every check here runs before any training or elicitation: a path that is not a
model, a GGUF file of an architecture transformers cannot load, a missing
``local`` extra, a chat template without an assistant turn, labels that are not
single tokens, and a model too large for the device's memory are all
:class:`~selfinterp.errors.InputError` (or :class:`~selfinterp.errors.MissingExtraError`)
naming the model and what to do.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path

from ...errors import InputError, MissingExtraError

__all__ = ["ModelSource", "resolve_model", "check_extra", "LOCAL_MODULES", "INSTALL_LINE", "estimate_params",
           "check_memory", "available_memory", "choose_device", "choose_dtype", "load_tokenizer", "load_model",
           "check_chat_template", "label_token_ids", "refuses_system", "render_chat", "end_of_turn_id"]

# the extra's modules (import name -> what to install)
LOCAL_MODULES = ("torch", "transformers", "peft", "accelerate", "gguf", "safetensors")
INSTALL_LINE = "pip install 'selfinterp[local]'"
_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


def check_extra(modules=LOCAL_MODULES) -> None:
    """Raise :class:`MissingExtraError` with the install line if a module of the ``local`` extra is missing."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingExtraError(f"the local backend needs {missing}, which are not installed: {INSTALL_LINE} "
                                "(a CPU-only torch: pip install torch --index-url https://download.pytorch.org/whl/cpu "
                                "first)")


@dataclass(frozen=True)
class ModelSource:
    """Where the weights are: ``kind`` "dir" (a Hugging Face model folder), "gguf" (one file) or "hub" (an id)."""

    kind: str
    location: str  # a folder, a file or a hub id (never written to a manifest: see ``label``)
    label: str  # the model as the experiment file names it

    def from_pretrained_args(self) -> tuple[str, dict]:
        if self.kind == "gguf":
            p = Path(self.location)
            return str(p.parent), {"gguf_file": p.name}
        return self.location, {}


def resolve_model(model: str, root: Path | None, *, where: str) -> ModelSource:
    """The model named ``model`` (relative paths against ``root``): checked to be a model, not loaded."""
    p = Path(model).expanduser()
    if not p.is_absolute() and root is not None:
        p = root / p
    looks_like_path = model.endswith(".gguf") or model.startswith((".", "/", "~")) or p.exists()
    if not looks_like_path:
        if model.count("/") != 1 or any(not part for part in model.split("/")):
            raise InputError(f"{where}: model {model!r} is neither a file, a folder nor a hub id (owner/name)")
        return ModelSource("hub", model, model)
    if not p.exists():
        raise InputError(f"{where}: model {model!r}: {p} does not exist")
    if p.is_dir():
        if not (p / "config.json").is_file():
            raise InputError(f"{where}: model {model!r}: the folder {p} holds no config.json, so it is not a "
                             "Hugging Face model folder")
        try:
            json.loads((p / "config.json").read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"{where}: model {model!r}: {p / 'config.json'} is not valid JSON ({exc})") from None
        return ModelSource("dir", str(p.resolve()), model)
    with open(p, "rb") as f:
        magic = f.read(4)
    if magic != b"GGUF":
        raise InputError(f"{where}: model {model!r}: {p} is neither a model folder nor a GGUF file")
    _check_gguf_architecture(p, where=f"{where}: model {model!r}")
    return ModelSource("gguf", str(p.resolve()), model)


@functools.lru_cache(maxsize=8)
def _gguf_header(path: str, size: int, mtime_ns: int) -> tuple[str, int]:
    """(architecture, number of parameters) of a GGUF file; parsed once per file version (reading every
    field of a file with a large vocabulary takes seconds)."""
    from gguf import GGUFReader

    reader = GGUFReader(path)
    field = reader.fields["general.architecture"]
    return (bytes(field.parts[field.data[0]]).decode("utf-8"),
            int(sum(int(t.n_elements) for t in reader.tensors)))


def _gguf_info(path) -> tuple[str, int]:
    st = os.stat(path)
    return _gguf_header(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


def _check_gguf_architecture(path: Path, *, where: str) -> None:
    check_extra(("gguf",))
    try:
        arch, _ = _gguf_info(path)
    except Exception as exc:  # a truncated or foreign file
        raise InputError(f"{where}: {path.name} is not a readable GGUF file ({type(exc).__name__}: {exc})") from None
    check_extra(("transformers",))
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    aliases = {"qwen2moe": "qwen2_moe", "qwen3moe": "qwen3_moe", "gpt-oss": "gpt_oss", "minimax-m2": "minimax_m2"}
    if arch not in GGUF_SUPPORTED_ARCHITECTURES and aliases.get(arch) not in GGUF_SUPPORTED_ARCHITECTURES:
        raise InputError(f"{where}: the GGUF file's architecture {arch!r} cannot be loaded by transformers "
                         f"(it loads {sorted(GGUF_SUPPORTED_ARCHITECTURES)}); convert the model to a Hugging Face "
                         "folder or use another file")


def estimate_params(src: ModelSource) -> int | None:
    """The number of parameters, read from the file headers without loading (None if unknown: a hub id)."""
    if src.kind == "gguf":
        return _gguf_info(src.location)[1]
    if src.kind == "dir":
        folder = Path(src.location)
        files = sorted(folder.glob("*.safetensors"))
        if files:
            from safetensors import safe_open

            n = 0
            for f in files:
                with safe_open(str(f), framework="pt") as st:
                    for k in st.keys():
                        n += int(_numel(st.get_slice(k).get_shape()))
            return n
        bins = sorted(folder.glob("*.bin"))
        if bins:
            return int(sum(f.stat().st_size for f in bins) // 4)
    return None


def _numel(shape) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


def available_memory(device: str) -> int | None:
    """Bytes free on ``device`` ("cpu": MemAvailable; "cuda...": the GPU's free memory)."""
    if device.startswith("cuda"):
        import torch

        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return int(free)
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_memory(n_params: int | None, dtype: str, device: str, *, where: str, training: bool = True,
                 available=None) -> int | None:
    """Estimate the bytes the model needs on ``device`` and refuse, up front, more than it has free.

    The estimate: the weights in ``dtype`` plus a quarter for activations, LoRA
    weights and their optimiser state (LoRA trains well under 1% of the weights).
    """
    if n_params is None:
        return None
    need = int(n_params * _BYTES[dtype] * (1.25 if training else 1.1))
    have = (available or globals()["available_memory"])(device)
    if have is not None and need > have:
        raise InputError(f"{where}: the model has {n_params / 1e9:.2f}B parameters and needs about "
                         f"{need / 2**30:.1f} GiB in {dtype} on {device}, which has {have / 2**30:.1f} GiB free; "
                         "choose a smaller model, dtype = \"bfloat16\", or a larger device")
    return need


def choose_device(device: str) -> str:
    """``auto``: CUDA where there is a GPU, else the CPU."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"[local] device = {device!r}, but torch sees no CUDA device")
    return device


def choose_dtype(dtype: str, device: str) -> str:
    """``auto``: bfloat16 on CUDA, float32 on the CPU."""
    if dtype == "auto":
        return "bfloat16" if device.startswith("cuda") else "float32"
    return dtype


def _hub_kwargs(src: ModelSource) -> dict:
    return {} if src.kind != "hub" else {"local_files_only": bool(os.environ.get("HF_HUB_OFFLINE"))}


def load_tokenizer(src: ModelSource, *, where: str):
    from transformers import AutoTokenizer

    name, kw = src.from_pretrained_args()
    try:
        tok = AutoTokenizer.from_pretrained(name, **kw, **_hub_kwargs(src))
    except Exception as exc:
        raise InputError(f"{where}: model {src.label!r}: its tokenizer cannot be loaded "
                         f"({type(exc).__name__}: {str(exc)[:300]})") from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return tok


def load_model(src: ModelSource, *, device: str, dtype: str, where: str):
    """The model in eval mode on ``device`` (GGUF weights dequantised to ``dtype``)."""
    import torch
    from transformers import AutoModelForCausalLM

    name, kw = src.from_pretrained_args()
    try:
        model = AutoModelForCausalLM.from_pretrained(name, **kw, dtype=getattr(torch, dtype), **_hub_kwargs(src))
    except Exception as exc:
        raise InputError(f"{where}: model {src.label!r} cannot be loaded as a causal language model "
                         f"({type(exc).__name__}: {str(exc)[:300]})") from None
    quantizer = getattr(model, "hf_quantizer", None)
    if src.kind == "gguf" and quantizer is not None:
        # transformers dequantises a GGUF file's weights to plain floats on loading; only its marker says
        # "quantized", which would refuse training
        quantizer.remove_quantization_config(model)
    # never a path of this machine in an adapter's or checkpoint's config (selfinterp writes the model's name
    # as the experiment file gives it into the adapters it saves); an empty name also keeps PEFT from
    # looking the name up on the hub when it saves a checkpoint
    model.config._name_or_path = src.label
    model.name_or_path = ""
    model.config.use_cache = True
    model.generation_config.pad_token_id = model.generation_config.pad_token_id or model.config.eos_token_id
    return model.to(device).eval()


_ANSWER = "ZQX-answer"  # the probe's answer: a string no template writes itself


def _probe(tok, template_kwargs: dict | None) -> tuple[str, str]:
    """(the generation prompt, the whole conversation) of a system message, a question and the answer ``_ANSWER``."""
    msgs = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Which is better?"}]
    return (render_chat(tok, msgs, template_kwargs, add_generation_prompt=True),
            render_chat(tok, msgs + [{"role": "assistant", "content": _ANSWER}], template_kwargs))


_REFUSES_SYSTEM: dict[tuple, bool] = {}  # (chat template, its variables) -> whether it refuses a system message


def refuses_system(tok, template_kwargs: dict | None = None) -> bool:
    """Whether the tokenizer's chat template refuses a system message (Gemma 2's raises an error on one)."""
    key = (str(getattr(tok, "chat_template", None) or ""), json.dumps(template_kwargs or {}, sort_keys=True))
    if key not in _REFUSES_SYSTEM:
        try:
            tok.apply_chat_template([{"role": "system", "content": "S"}, {"role": "user", "content": "U"}],
                                    tokenize=False, add_generation_prompt=True, **(template_kwargs or {}))
            _REFUSES_SYSTEM[key] = False
        except Exception:  # jinja's TemplateError, raised by the template itself
            _REFUSES_SYSTEM[key] = True
    return _REFUSES_SYSTEM[key]


def render_chat(tok, messages, template_kwargs: dict | None = None, **kwargs) -> str:
    """The chat template's text for ``messages``: ``template_kwargs`` are the template's own variables
    (``[local] chat_template_kwargs``, e.g. Qwen3's ``enable_thinking``), ``kwargs`` ``apply_chat_template``'s.

    Where the template refuses a system message (Gemma 2), the system message
    opens the first user turn instead, followed by a blank line: what Gemma 3's
    own template does with one.
    """
    msgs = list(messages)
    if (len(msgs) > 1 and msgs[0].get("role") == "system" and msgs[1].get("role") == "user"
            and refuses_system(tok, template_kwargs)):
        msgs = [{"role": "user", "content": f"{msgs[0]['content']}\n\n{msgs[1]['content']}"}, *msgs[2:]]
    return tok.apply_chat_template(msgs, tokenize=False, **(template_kwargs or {}), **kwargs)


def check_chat_template(tok, template_kwargs: dict | None = None, *, where: str) -> None:
    """The template must render a user turn and a generation prompt, with a system message first (opening the
    user turn where the template refuses one: ``render_chat``), and an assistant turn whose answer follows the
    generation prompt at once: the answer's first token is read from the prompt's next-token logits."""
    if not getattr(tok, "chat_template", None):
        raise InputError(f"{where}: the tokenizer has no chat template")
    try:
        prompt, full = _probe(tok, template_kwargs)
    except Exception as exc:
        raise InputError(f"{where}: the chat template fails to render ({type(exc).__name__}: {exc})") from None
    if not full.startswith(prompt) or _ANSWER not in full[len(prompt):]:
        raise InputError(f"{where}: the chat template has no assistant turn that follows its generation prompt "
                         "(an answer cannot be trained or read after the prompt)")
    _check_no_date(tok, prompt, where=where)
    between = full[len(prompt):full.index(_ANSWER, len(prompt))]
    if between.strip():
        hint = (" (a reasoning model's empty thinking block: set [local] chat_template_kwargs = "
                "{ enable_thinking = false }, as for Qwen3)" if "think" in between else
                " (set the template's variables with [local] chat_template_kwargs)")
        raise InputError(f"{where}: the chat template puts {between!r} between the generation prompt and the "
                         f"assistant's answer, so a choice cannot be read from the prompt's next token{hint}")


def _check_no_date(tok, prompt: str, *, where: str) -> None:
    """A template that writes today's date into every prompt (Llama 3's "Today Date", through transformers'
    ``strftime_now``) would change the prompts from day to day: a resumed run would train and ask other
    prompts than it began with, and a result would not regenerate."""
    import datetime

    if "strftime_now" not in str(tok.chat_template):
        return
    today = datetime.date.today()
    if any(today.strftime(f) in prompt for f in ("%d %b %Y", "%d %B %Y", "%Y-%m-%d", "%B %d, %Y", "%b %d, %Y")):
        raise InputError(f"{where}: the chat template writes today's date into every prompt, so the prompts would "
                         "change from day to day; fix the date with the template's variable, e.g. for Llama 3: "
                         '[local] chat_template_kwargs = { date_string = "26 Jul 2024" } (its own default)')


def end_of_turn_id(tok, template_kwargs: dict | None = None) -> int | None:
    """The special token the chat template closes an assistant's turn with (``<|im_end|>``, ``<end_of_turn>``,
    ``<|eot_id|>``), where it has one: generation stops there."""
    _, full = _probe(tok, template_kwargs)
    after = full[full.rindex(_ANSWER) + len(_ANSWER):]
    ids = tok(after, add_special_tokens=False)["input_ids"] if after else []
    return ids[0] if ids and ids[0] in set(tok.all_special_ids) | _added_special(tok) else None


def _added_special(tok) -> set[int]:
    return {i for i, t in getattr(tok, "added_tokens_decoder", {}).items() if getattr(t, "special", False)}


def label_token_ids(tok, labels, *, where: str) -> list[int]:
    """The token id of each label, which must be exactly one token for this tokenizer."""
    ids = []
    for lab in labels:
        enc = tok.encode(lab, add_special_tokens=False)
        if len(enc) != 1:
            raise InputError(f"{where}: the label {lab!r} is {len(enc)} tokens for this tokenizer "
                             f"({[tok.decode([t]) for t in enc]}); choices are read from one token's logits, "
                             "so each label must be a single token")
        ids.append(enc[0])
    return ids
