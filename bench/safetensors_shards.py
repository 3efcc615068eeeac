"""Safetensors shards written while the next one is generated, and the byte counts read back from their headers."""

from __future__ import annotations

import json
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


class ShardWriter:
    """Safetensors shards of about `shard_bytes`, each written on a thread while the next one is generated."""

    def __init__(self, out: Path, shard_bytes: int) -> None:
        self.out, self.shard_bytes = out, shard_bytes
        self.pending: dict[str, torch.Tensor] = {}
        self.pending_bytes = 0
        self.parts: list[tuple[Path, list[str]]] = []
        self.pool = ThreadPoolExecutor(max_workers=1)
        self.saving: Future[None] | None = None

    def add(self, tensors: dict[str, torch.Tensor]) -> None:
        size = sum(t.numel() * t.element_size() for t in tensors.values())
        if self.pending and self.pending_bytes + size > self.shard_bytes:
            self.flush()
        self.pending |= {name: t.cpu() for name, t in tensors.items()}
        self.pending_bytes += size

    def flush(self) -> None:
        from safetensors.torch import save_file

        if self.saving:
            self.saving.result()  # at most one shard waits in host memory while another is written
        part = self.out / f"part-{len(self.parts) + 1}.tmp"  # not *.safetensors until complete
        self.saving = self.pool.submit(save_file, self.pending, str(part), metadata={"format": "pt"})
        self.parts.append((part, list(self.pending)))
        self.pending, self.pending_bytes = {}, 0

    def close(self) -> list[Path]:
        if self.pending:
            self.flush()
        if self.saving:
            self.saving.result()
        self.pool.shutdown()
        count = len(self.parts)
        files, weight_map = [], {}
        for i, (part, names) in enumerate(self.parts, 1):
            file = self.out / ("model.safetensors" if count == 1 else f"model-{i:05}-of-{count:05}.safetensors")
            part.replace(file)
            file.chmod(0o644)  # the library writes a private file
            files.append(file)
            weight_map |= dict.fromkeys(names, file.name)
        if count > 1:
            total = sum(f.stat().st_size for f in files)
            index = {"metadata": {"total_size": total}, "weight_map": weight_map}
            (self.out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
        return files


def safetensors_header(file: Path) -> dict[str, Any]:
    with file.open("rb") as f:
        header: dict[str, Any] = json.loads(f.read(int.from_bytes(f.read(8), "little")))
    header.pop("__metadata__", None)
    return header


def gpu_weight_bytes(model_dir: Path) -> int:
    """Bytes of the weights the GPU reads per token: every tensor but the token embedding table, which both
    ExLlamaV2 and ExLlamaV3 keep in system RAM (the same count as bench/gpu_decode.py's for FP16 models)."""
    return sum(
        entry["data_offsets"][1] - entry["data_offsets"][0]
        for file in sorted(model_dir.glob("*.safetensors"))
        for name, entry in safetensors_header(file).items()
        if "embed_tokens" not in name
    )
