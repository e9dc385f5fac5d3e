"""LoRA fine-tuning of one local job with transformers' Trainer and PEFT, resumable from its checkpoints.

A job is a folder holding ``job.json`` (what to train: the base model, the
parent adapter if any, the training file, hyperparameters, seed), its events
and its checkpoints.  :func:`train_job` trains it; started again after a kill
it resumes from the last checkpoint.  The loss falls on the assistant's
answer tokens only (:func:`encode_example`).

Run one job by itself (so that accelerate can spread it over several GPUs)::

    accelerate launch -m selfinterp.llm.local.train OUT/local/jobs/JOB_ID
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from ...errors import InputError
from .model import render_chat

__all__ = ["encode_example", "read_examples", "train_job", "read_job", "write_job", "log_event",
           "checkpoint_steps"]

IGNORE = -100


def encode_example(tok, messages: list[dict], *, where: str = "example",
                   template_kwargs: dict | None = None) -> tuple[list[int], list[int]]:
    """(input ids, labels) of one chat example: labels are -100 on every token but the final answer's.

    The answer's tokens are those the chat template adds after the generation
    prompt: the assistant's content and the template's end of turn.
    """
    if not messages or messages[-1].get("role") != "assistant":
        raise InputError(f"{where}: the last message must be the assistant's answer")
    prompt = render_chat(tok, messages[:-1], template_kwargs, add_generation_prompt=True)
    full = render_chat(tok, messages, template_kwargs)
    if not full.startswith(prompt):
        raise InputError(f"{where}: the chat template renders the answer's turn differently from its "
                         "generation prompt, so the answer tokens cannot be told apart")
    p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    a_ids = tok(full[len(prompt):], add_special_tokens=False)["input_ids"]
    if not a_ids:
        raise InputError(f"{where}: empty answer")
    return p_ids + a_ids, [IGNORE] * len(p_ids) + a_ids


def read_examples(path) -> list[list[dict]]:
    out = []
    for i, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                out.append(json.loads(line)["messages"])
            except (json.JSONDecodeError, KeyError, TypeError):
                raise InputError(f"{path}, line {i}: not a chat fine-tuning example") from None
    return out


def read_job(folder) -> dict:
    return json.loads((Path(folder) / "job.json").read_text(encoding="utf-8"))


def write_job(folder, job: dict) -> None:
    path = Path(folder) / "job.json"
    tmp = path.with_name("job.json.part")
    tmp.write_text(json.dumps(job, indent=2, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


def log_event(folder, message: str, level: str = "info") -> None:
    path = Path(folder) / "events.jsonl"
    n = len(path.read_text(encoding="utf-8").splitlines()) if path.exists() else 0
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps({"id": f"ftevent-{Path(folder).name}-{n}", "created_at": int(time.time()),
                            "level": level, "message": message}) + "\n")


def checkpoint_steps(folder) -> list[tuple[int, Path]]:
    """The job's saved checkpoints as (step, folder), in step order."""
    ck = Path(folder) / "checkpoints"
    out = []
    for p in ck.glob("checkpoint-*") if ck.is_dir() else []:
        try:
            step = int(p.name.split("-", 1)[1])
        except ValueError:
            continue
        if (p / "trainer_state.json").is_file() and (p / "adapter_model.safetensors").is_file():
            out.append((step, p))
    return sorted(out)


class _Examples:
    def __init__(self, rows):
        self.rows = rows

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]


def answer_logits_only(model) -> bool:
    """Whether the model's loss is transformers' shared one, which takes ``shift_labels``: then only the answers'
    logits are computed.  A model with a loss of its own (Gemma 3's image-and-text model before transformers 5,
    custom code) gets every position's."""
    import inspect

    try:
        return "self.loss_function(" in inspect.getsource(type(model).forward)
    except (OSError, TypeError):
        return False


def _collate(pad_id, answers_only: bool = True):
    def collate(batch):
        import torch

        n = max(len(b["input_ids"]) for b in batch)
        ids = torch.full((len(batch), n), pad_id, dtype=torch.long)
        labels = torch.full((len(batch), n), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(batch), n), dtype=torch.long)
        for j, b in enumerate(batch):  # right padding for training (every position counted from 0)
            k = len(b["input_ids"])
            ids[j, :k] = torch.tensor(b["input_ids"])
            labels[j, :k] = torch.tensor(b["labels"])
            mask[j, :k] = 1
        if not answers_only:
            return {"input_ids": ids, "labels": labels, "attention_mask": mask}
        # logits only where a next token is trained (the answers): the vocabulary's projection and its loss
        # over every prompt position is wasted work, a large share of a step for a small model.  Position t
        # predicts token t + 1; the loss is the model's own, on these positions' shifted labels
        shift = torch.cat([labels[:, 1:], torch.full((len(batch), 1), IGNORE, dtype=torch.long)], dim=1)
        keep = (shift != IGNORE).any(dim=0).nonzero().squeeze(1)
        return {"input_ids": ids, "labels": labels, "attention_mask": mask, "logits_to_keep": keep,
                "shift_labels": shift[:, keep].contiguous()}

    return collate


def _encode_file(tok, path, template_kwargs: dict) -> list[dict]:
    rows = []
    for i, msgs in enumerate(read_examples(path), start=1):
        ids, labels = encode_example(tok, msgs, where=f"{Path(path).name}, line {i}", template_kwargs=template_kwargs)
        rows.append({"input_ids": ids, "labels": labels})
    return rows


def _checkpointing_arguments(training_arguments) -> dict:
    """TrainingArguments' switch for recomputing activations in the backward pass (transformers 5 renamed it
    from gradient_checkpointing to activation_checkpointing)."""
    import dataclasses

    names = {f.name for f in dataclasses.fields(training_arguments)}
    name = "activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"
    return {name: True, f"{name}_kwargs": {"use_reentrant": False}}


def train_job(folder, engine) -> dict:
    """Train the job in ``folder`` on ``engine``'s base model (resuming from its last checkpoint); its job.json.

    Leaves the engine's base model bare (no adapter).  The final adapter is
    written to ``engine.adapters_dir/<hash>`` and named in job.json.
    """
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import Trainer, TrainerCallback, TrainingArguments, set_seed

    from .engine import adapter_name, quiet_peft, save_adapter, unload

    folder = Path(folder)
    job = read_job(folder)
    if job["status"] == "succeeded":
        return job
    hp = job["hyperparameters"]
    root = folder.parent.parent  # OUT/local
    chat = job["identity"].get("chat_template_kwargs") or {}  # the template's variables the job was created with
    train_rows = _encode_file(engine.tok, root / job["training_file"], chat)
    val_rows = _encode_file(engine.tok, root / job["validation_file"], chat) if job.get("validation_file") else None
    last = checkpoint_steps(folder)
    checkpointing = bool(job.get("gradient_checkpointing"))
    main = os.environ.get("RANK", "0") == "0"  # of several processes (accelerate launch), the one that writes
    if main:
        job["status"] = "running"
        job.setdefault("started_at", int(time.time()))
        write_job(folder, job)
        log_event(folder, f"training resumes from the checkpoint of step {last[-1][0]}" if last
                  else f"training starts: {len(train_rows)} examples, LoRA rank {hp['lora_r']}"
                  + (f", {os.environ['WORLD_SIZE']} processes" if int(os.environ.get("WORLD_SIZE", "1")) > 1 else "")
                  + (", gradient checkpointing" if checkpointing else ""))

    base = engine.release_adapters()
    set_seed(job["seed"])  # LoRA's initial weights
    with quiet_peft():
        if job.get("parent_adapter"):  # introspection folds start from the instilled adapter, as saved
            model = PeftModel.from_pretrained(base, str(root / job["parent_adapter"]), is_trainable=True)
        else:
            cfg = LoraConfig(r=hp["lora_r"], lora_alpha=hp["lora_alpha"], lora_dropout=hp["lora_dropout"],
                             target_modules=hp["target_modules"], bias="none", task_type="CAUSAL_LM")
            model = get_peft_model(base, cfg)
    for c in model.peft_config.values():
        # no name in the checkpoints' configs: PEFT would look a name up on the hub when saving (selfinterp
        # names the base model, as the experiment file does, in the adapters it stores)
        c.base_model_name_or_path = None

    class Events(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs and main:
                log_event(folder, f"step {state.global_step}/{state.max_steps}: training loss {logs['loss']:.4f}")

        def on_save(self, args, state, control, **kw):
            if main:
                log_event(folder, f"checkpoint saved at step {state.global_step}")

    on_cpu = engine.device == "cpu"
    args = TrainingArguments(
        output_dir=str(folder / "checkpoints"), per_device_train_batch_size=hp["batch_size"],
        num_train_epochs=hp["n_epochs"], max_steps=hp["max_steps"] or -1, learning_rate=hp["learning_rate"],
        lr_scheduler_type="linear", warmup_steps=0, weight_decay=0.0, logging_steps=1, save_strategy="steps",
        save_steps=hp["save_steps"], save_total_limit=None, seed=job["seed"], data_seed=job["seed"],
        report_to="none", use_cpu=on_cpu, dataloader_num_workers=0, disable_tqdm=True,
        remove_unused_columns=False, per_device_eval_batch_size=hp["batch_size"], prediction_loss_only=True,
        **(_checkpointing_arguments(TrainingArguments) if checkpointing else {}))
    trainer = Trainer(model=model, args=args, train_dataset=_Examples(train_rows),
                      data_collator=_collate(engine.tok.pad_token_id, answer_logits_only(engine.base)),
                      callbacks=[Events()])
    try:
        with quiet_peft():
            result = trainer.train(resume_from_checkpoint=str(last[-1][1]) if last else None)
        metrics = {"train_loss": float(result.training_loss), "steps": int(result.global_step),
                   "train_runtime": float(result.metrics.get("train_runtime", 0.0))}
        if val_rows:
            ev = trainer.evaluate(eval_dataset=_Examples(val_rows))
            metrics["validation_loss"] = float(ev["eval_loss"])
            log_event(folder, f"validation loss {ev['eval_loss']:.4f}")
        if main:
            tmp = root / "adapters" / f".{folder.name}.part"
            digest = save_adapter(model, tmp, base_label=engine.source.label)
            dest = root / "adapters" / digest[:16]
            if dest.exists():
                import shutil

                shutil.rmtree(tmp)
            else:
                os.replace(tmp, dest)
            name = adapter_name(job["suffix"], digest)
            n_tokens = sum(len(r["input_ids"]) for r in train_rows)
            job.update(status="succeeded", fine_tuned_model=name, adapter_sha256=digest,
                       adapter=f"adapters/{digest[:16]}", metrics=metrics,
                       trained_tokens=int(n_tokens * metrics["steps"] * hp["batch_size"] * args.world_size
                                          / max(len(train_rows), 1)),
                       finished_at=int(time.time()))
            write_job(folder, job)
            log_event(folder, f"adapter {name} saved after {metrics['steps']} steps")
    finally:
        engine._base = unload(model) if hasattr(model, "unload") else base
        if checkpointing:  # the bare model as it was: later jobs choose for themselves
            bare = engine._base
            (getattr(bare, "activation_checkpointing_disable", None) or bare.gradient_checkpointing_disable)()
        del trainer
        if not on_cpu:
            torch.cuda.empty_cache()
    return job


def main(argv=None) -> int:  # pragma: no cover - exercised through a subprocess
    import argparse
    import sys

    from .engine import Engine
    from .model import ModelSource

    p = argparse.ArgumentParser(prog="python -m selfinterp.llm.local.train", description=__doc__.split("\n\n")[0])
    p.add_argument("job", help="the job's folder (OUT/local/jobs/JOB_ID)")
    a = p.parse_args(argv)
    folder = Path(a.job).resolve()
    try:
        job = read_job(folder)
        src = job["source"]
        location = src["location"] if src["kind"] == "hub" else str((folder / src["location"]).resolve())
        device = job["device"]
        if device == "cuda" and os.environ.get("LOCAL_RANK"):  # one process per GPU (accelerate launch, torchrun)
            device = f"cuda:{int(os.environ['LOCAL_RANK'])}"
        engine = Engine(ModelSource(src["kind"], location, src["label"]), device=device,
                        dtype=job["dtype"], adapters_dir=folder.parent.parent / "adapters",
                        labels=tuple(job["labels"]), threads=job.get("threads"),
                        chat_template_kwargs=job["identity"].get("chat_template_kwargs"))
        job = train_job(folder, engine)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"status": job["status"], "fine_tuned_model": job.get("fine_tuned_model")}))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
