"""Bad input gets one clear line on stderr, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import atlas, one_line_error


def test_row_missing_a_field(tmp_path: Path) -> None:
    row = {"instance_id": "demo__x-1", "repo": "demo/x", "problem_statement": "bug", "FAIL_TO_PASS": ["t"]}
    dataset = tmp_path / "rows.jsonl"
    dataset.write_text(json.dumps(row) + "\n")
    line = one_line_error(atlas("run", "--dataset", str(dataset), cwd=tmp_path))
    assert "base_commit" in line and "demo__x-1" in line


def test_unknown_instance_id(tmp_path: Path) -> None:
    line = one_line_error(atlas("run", "--dataset", "atlas-mini", "--instances", "nope__x-1", cwd=tmp_path))
    assert "unknown instance id" in line and "nope__x-1" in line


def test_unreachable_docker_engine(tmp_path: Path) -> None:
    env = {"DOCKER_HOST": f"unix://{tmp_path / 'no-engine.sock'}"}
    line = one_line_error(atlas("gc", cwd=tmp_path, env=env))
    assert "Docker engine" in line


def test_missing_dataset_file(tmp_path: Path) -> None:
    line = one_line_error(atlas("run", "--dataset", str(tmp_path / "absent.jsonl"), cwd=tmp_path))
    assert "absent.jsonl" in line


def test_eval_of_a_directory_that_is_not_a_run(tmp_path: Path) -> None:
    line = one_line_error(atlas("eval", str(tmp_path), cwd=tmp_path))
    assert "run.yaml" in line


def test_plan_vram_prints_a_plan_or_one_line(tmp_path: Path) -> None:
    config = str(Path(__file__).parent / "data" / "vram" / "qwen2.5-coder-32b-config.json")
    plan = atlas("plan-vram", config, "--bpw", "4.0", "--agents", "4", cwd=tmp_path)
    assert plan.returncode == 0 and "Q4" in plan.stdout and "<- chosen" in plan.stdout
    line = one_line_error(atlas("plan-vram", config, "--bpw", "4.65", "--agents", "8", cwd=tmp_path))
    assert "not 8: lower --agents or the bpw" in line


def test_plan_vram_counts_exl3_weights_and_a_draft_model(tmp_path: Path) -> None:
    config = str(Path(__file__).parent / "data" / "vram" / "qwen2.5-coder-32b-config.json")
    draft = tmp_path / "draft"
    draft.mkdir()
    shape = {"hidden_size": 896, "intermediate_size": 4864, "num_attention_heads": 14, "num_hidden_layers": 24}
    quant = {"quant_method": "exl3", "bits": 4.0, "head_bits": 6}
    shape |= {"num_key_value_heads": 2, "vocab_size": 151936, "tie_word_embeddings": True}
    (draft / "config.json").write_text(json.dumps(shape | {"quantization_config": quant}))
    plain = atlas("plan-vram", config, "--bpw", "4.0", "--format", "exl3", cwd=tmp_path)
    assert plain.returncode == 0 and "4.0 bpw EXL3" in plain.stdout and "draft" not in plain.stdout
    drafted = atlas("plan-vram", config, "--bpw", "4.0", "--format", "exl3", "--draft", str(draft), cwd=tmp_path)
    assert drafted.returncode == 0 and "+ draft 0.2" in drafted.stdout
    line = one_line_error(atlas("plan-vram", config, "--bpw", "4.0", "--format", "exl4", cwd=tmp_path))
    assert "quant_format" in line and "'exl2' or 'exl3'" in line
