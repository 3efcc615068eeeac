"""`atlas models prepare SOURCE OUTPUT`: quantize a model to EXL2 with ExLlamaV2's own converter.

SOURCE is a Hugging Face directory (config.json + *.safetensors), a GGUF file, or `local:NAME` (a
bundled GGUF such as local:smollm2). A GGUF is first written out as a Hugging Face directory by
transformers (which dequantizes it); ExLlamaV2 then measures and quantizes on the GPU. Its working
directory sits beside OUTPUT and survives an interrupted run, which the next run resumes.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from atlas_agent.errors import ModelError
from atlas_agent.modelfiles.bundled import GPU_HINT, bundled_gguf

CONVERT_HINT = "pip install 'atlas-agent[gpu,prepare]' (transformers, gguf)"
HEAD_BITS = (2, 3, 4, 5, 6, 8)  # what the converter's head options allow


def resolve_source(source: str) -> Path:
    """`local:NAME`, a .gguf file or a Hugging Face directory → its path, checked."""
    kind, _, rest = source.partition(":")
    if kind == "local" and rest:
        return bundled_gguf(rest)
    path = Path(source).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return path
    if path.is_dir() and (path / "config.json").is_file():
        if not any(path.glob("*.safetensors")):
            raise ModelError(f"{path} has no *.safetensors weights: the EXL2 converter reads safetensors only")
        return path
    raise ModelError(f"{source} is neither local:NAME, a .gguf file, nor a model directory with config.json")


def gguf_to_hf(gguf: Path, out: Path) -> Path:
    """Dequantize a GGUF into an FP16 Hugging Face directory (weights, config, tokenizer, chat template)."""
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise ModelError(f"reading GGUF files needs transformers and gguf: {CONVERT_HINT}") from exc
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float16)
    except (ValueError, OSError, ImportError) as exc:
        raise ModelError(f"transformers cannot read {gguf}: {exc}") from exc
    # transformers marks a GGUF-loaded model as quantized and refuses save_pretrained, though its
    # tensors are already dequantized: write them and the config ourselves (tied tensors once each)
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    seen: set[int] = set()
    tensors = {}
    for name, tensor in model.state_dict().items():
        if tensor.data_ptr() not in seen:
            seen.add(tensor.data_ptr())
            tensors[name] = tensor.detach().to(torch.float16).contiguous().cpu()
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    config = exllama_config(model.config.to_dict(), type(model).__name__)
    (out / "config.json").write_text(json.dumps(config, indent=2, default=str), encoding="utf-8")
    tokenizer.save_pretrained(out)
    return out


def exllama_config(config: dict[str, Any], architecture: str) -> dict[str, Any]:
    """A transformers config of a dequantized GGUF model as ExLlamaV2 reads it: FP16, no quantization
    entry, the architecture named (transformers 5 leaves it out for GGUF models) and rope_theta at the
    top level (transformers 5 moves it under rope_parameters; ExLlamaV2 would fall back to 10000)."""
    config = {key: value for key, value in config.items() if key != "quantization_config"}
    config["architectures"] = config.get("architectures") or [architecture]
    rope = config.get("rope_parameters") or {}
    if "rope_theta" not in config and "rope_theta" in rope:
        config["rope_theta"] = rope["rope_theta"]
    config["torch_dtype"] = "float16"
    return config


def quantized_bits(model_dir: Path) -> float | None:
    """The bpw an EXL2 directory was quantized to, from its config.json; None if it is no EXL2 model."""
    try:
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    quant = config.get("quantization_config") or {}
    has_weights = any(model_dir.glob("*.safetensors"))
    return float(quant["bits"]) if quant.get("quant_method") == "exl2" and has_weights else None


def _check_gpu() -> None:
    try:
        import exllamav2  # noqa: F401
        import torch
    except ImportError as exc:
        raise ModelError(f"EXL2 conversion needs exllamav2: {GPU_HINT}") from exc
    if not torch.cuda.is_available():
        raise ModelError("EXL2 conversion runs on an NVIDIA GPU: CUDA is not available here")


def prepare_model(
    source: str, output: Path, *, bpw: float, head_bits: int = 6, echo: Callable[[str], None] = print
) -> Path:
    """Convert `source` into the EXL2 directory `output` and return it."""
    if not 2.0 <= bpw <= 8.0:
        raise ModelError(f"--bpw {bpw}: EXL2 quantizes to 2.0-8.0 bits per weight")
    if head_bits not in HEAD_BITS:
        raise ModelError(f"--head-bits {head_bits}: choose one of {', '.join(map(str, HEAD_BITS))}")
    path = resolve_source(source)
    output = output.expanduser().resolve()
    if output.exists() and any(output.iterdir()):
        raise ModelError(f"{output} exists and is not empty: choose another OUTPUT or remove it")
    _check_gpu()
    work = output.parent / f".{output.name}.exl2-work"
    work.mkdir(parents=True, exist_ok=True)
    hf = path
    if path.is_file():
        hf = work / "hf"
        if not (hf / "config.json").is_file():
            echo(f"dequantizing {path.name} with transformers")
            gguf_to_hf(path, hf)
    echo(f"quantizing {hf} to {bpw} bpw (head {head_bits} bits) with ExLlamaV2")
    command = [sys.executable, "-m", "exllamav2.conversion.convert_exl2", "-i", str(hf), "-o", str(work / "job")]
    command += ["-cf", str(output), "-b", str(bpw), "-hb", str(head_bits)]
    finished = subprocess.run(command, check=False, capture_output=True, text=True)
    # the converter reports its own errors as " ## ..." lines and exits 0: judge by what it wrote
    if finished.returncode != 0 or quantized_bits(output) is None:
        lines = (finished.stdout + finished.stderr).strip().splitlines()
        reason = next((line.strip() for line in reversed(lines) if line.strip()), "no output")
        raise ModelError(f"the EXL2 converter failed (exit {finished.returncode}): {reason}")
    shutil.rmtree(work, ignore_errors=True)
    return output
