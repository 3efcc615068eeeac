"""Self-check of bench/synthetic_quant.py on a CUDA machine with exllamav2 and exllamav3 installed.

    python bench/check_synthetic_quant.py [--shape qwen32b --layers 8] [--bits 4.0] [--formats exl2 exl3]

Writes a tiny EXL2 and a tiny EXL3 model at 4.0 and 4.65 bits per weight (and, with --shape, one of
that shape at --bits), then loads each with its own library's plain API in a subprocess of its own,
so a CUDA fault in one model cannot take the others down. For each model it prints one PASS or FAIL
line per check, with the reason: the model is written, the library loads it, a forward pass gives
finite logits that are not constant, 32 greedy tokens (printed) are not all the same, and the
decode step time (median, and the weight bytes read per second at that rate). Ends with the counts;
exits 1 if anything failed.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from synthetic_quant import SHAPES, gpu_weight_bytes, make_exl2_model, make_exl3_model

PROMPT = "def allocate(shares, total):\n    # split the total among the shares"
MAX_TOKENS = 2048  # cache length: ExLlamaV2 load_autosplit runs max_input_len (2048) tokens; ExLlamaV3 pages of 256
RESULTS = {"PASS": 0, "FAIL": 0}


def report(ok: bool, check: str, detail: str) -> bool:
    RESULTS["PASS" if ok else "FAIL"] += 1
    print(f"{'PASS' if ok else 'FAIL'} {check}: {detail}", flush=True)
    return ok


def attempt(check: str, step: Callable[[], Any]) -> Any:
    """Run one step; a raised error is that check's FAIL line (with the traceback's tail) and None."""
    try:
        return step()
    except Exception as exc:  # every failure is reported, and the run goes on
        tail = "".join(traceback.format_exception(exc)[-3:]).strip().replace("\n", " | ")
        report(False, check, f"{type(exc).__name__}: {exc} [{tail}]")
        return None


class Exl2:
    """ExLlamaV2 0.3.2: ExLlamaV2Config / ExLlamaV2 / ExLlamaV2Cache / load_autosplit / ExLlamaV2Tokenizer."""

    def __init__(self, model_dir: Path) -> None:
        from exllamav2 import ExLlamaV2, ExLlamaV2Cache, ExLlamaV2Config, ExLlamaV2Tokenizer

        config = ExLlamaV2Config(str(model_dir))  # reads config.json and maps the tensors
        self.model = ExLlamaV2(config)
        self.cache = ExLlamaV2Cache(self.model, max_seq_len=MAX_TOKENS, lazy=True)
        self.model.load_autosplit(self.cache, progress=False)
        self.tokenizer = ExLlamaV2Tokenizer(config)

    def encode(self, text: str) -> Any:
        return self.tokenizer.encode(text)  # (1, n) int64 on the CPU

    def logits(self, ids: Any) -> Any:
        """All positions' logits without a cache."""
        return self.model.forward(ids)

    def reset(self) -> None:
        self.cache.current_seq_len = 0

    def step(self, ids: Any, past: int) -> Any:
        """Logits of `ids` appended to the cached `past` tokens (the cache advances itself)."""
        assert self.cache.current_seq_len == past
        return self.model.forward(ids, self.cache)

    def decode(self, ids: list[int]) -> str:
        import torch

        return str(self.tokenizer.decode(torch.tensor(ids)))


class Exl3:
    """ExLlamaV3 1.6.5: Config.from_directory / Model.from_config / Cache / model.load / Tokenizer."""

    def __init__(self, model_dir: Path) -> None:
        from exllamav3 import Cache, Config, Model, Tokenizer

        config = Config.from_directory(str(model_dir))
        self.model = Model.from_config(config)
        self.cache = Cache(self.model, max_num_tokens=MAX_TOKENS)  # attached before load, which allocates it
        self.model.load("cuda:0")
        self.tokenizer = Tokenizer(config)

    def encode(self, text: str) -> Any:
        return self.tokenizer.encode(text)  # (1, n) int64 on the CPU

    def logits(self, ids: Any) -> Any:
        return self.model.forward(ids, {"attn_mode": "flash_attn_nc"})

    def reset(self) -> None:
        pass  # positions come with each call

    def step(self, ids: Any, past: int) -> Any:
        params = {"attn_mode": "flash_attn", "cache": self.cache, "past_len": past, "batch_shape": (1, MAX_TOKENS)}
        return self.model.forward(ids, params)

    def decode(self, ids: list[int]) -> str:
        import torch

        return str(self.tokenizer.decode(torch.tensor(ids)))


def check_logits(runtime: Exl2 | Exl3) -> None:
    ids = runtime.encode(PROMPT)
    logits = runtime.logits(ids).float()
    finite = bool(logits.isfinite().all())
    report(finite, "logits finite", f"shape {tuple(logits.shape)}, {int((~logits.isfinite()).sum())} not finite")
    if finite:
        spread = logits[0, -1].std().item()
        picks = len(set(logits[0].argmax(-1).tolist()))
        detail = f"last position std {spread:.3f}, {picks} different argmax over {logits.shape[1]} positions"
        report(spread > 1e-2 and picks > 1, "logits not constant", detail)


def check_greedy(runtime: Exl2 | Exl3, tokens: int, warmup: int, weight_bytes: int) -> None:
    """Greedy decoding through the cache, one token per step, each step timed to the token on the host: the
    first `tokens` are printed, then `warmup` more steps (ExLlamaV2 times two kernel variants over the first 200
    calls of each matrix shape before it settles, the head's shape once per step), then `tokens` timed steps."""
    import torch

    ids = runtime.encode(PROMPT)
    runtime.reset()
    token = int(runtime.step(ids, 0)[0, -1].float().argmax())
    past, out, seconds = ids.shape[1], [token], []
    for _ in range(2 * tokens + warmup - 1):
        torch.cuda.synchronize()
        started = time.perf_counter()
        logits = runtime.step(torch.tensor([[token]], dtype=torch.long), past)
        token = int(logits[0, -1].float().argmax())  # waits for the step
        seconds.append(time.perf_counter() - started)
        past += 1
        out.append(token)
    first = out[:tokens]
    text = attempt("decode text", lambda: runtime.decode(first))
    print(f"     tokens: {first}\n     text: {text!r}")
    report(len(set(first)) > 1, "greedy tokens vary", f"{len(set(first))} different among {len(first)}")
    timed = seconds[-tokens:]
    median = statistics.median(timed)
    rate = f"{weight_bytes / median / 1e9:.0f} GB/s of weights"
    detail = f"median {median * 1e3:.2f} ms/token ({1 / median:.0f} tokens/s, {rate}), min {min(timed) * 1e3:.2f} ms"
    early = f"first {tokens - 1} steps: median {statistics.median(seconds[: tokens - 1]) * 1e3:.2f} ms"
    timings = [round(s * 1e3, 2) for s in timed]
    report(True, "decode step time", f"{detail} after {warmup} warm-up steps ({early}); ms: {timings}")


def check_model(model_dir: Path, form: str, tokens: int, warmup: int) -> int:
    """The library checks of one written model, in this process; returns the exit status."""
    import torch

    print(f"== {form} {model_dir} on {torch.cuda.get_device_name()}", flush=True)
    started = time.perf_counter()
    runtime = attempt("load", lambda: (Exl2 if form == "exl2" else Exl3)(model_dir))
    if runtime is not None:
        report(True, "load", f"{time.perf_counter() - started:.1f} s, {torch.cuda.memory_allocated() / 1e9:.2f} GB")
        attempt("logits", lambda: check_logits(runtime))
        attempt("greedy", lambda: check_greedy(runtime, tokens, warmup, gpu_weight_bytes(model_dir)))
    print(f"{RESULTS['PASS']} passed, {RESULTS['FAIL']} failed", flush=True)
    return 1 if RESULTS["FAIL"] else 0


def write(out: Path, form: str, shape: str, layers: int | None, bits: float) -> Path | None:
    make = make_exl2_model if form == "exl2" else make_exl3_model
    name = f"{form}-{shape}-{layers or SHAPES[shape]['num_hidden_layers']}-{bits}"
    started = time.perf_counter()
    model_dir = attempt(f"write {name}", lambda: make(out / name, shape, layers, bits))
    if model_dir is not None:
        size = gpu_weight_bytes(model_dir)
        report(True, f"write {name}", f"{time.perf_counter() - started:.1f} s, {size / 1e9:.3f} GB read per token")
    return model_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), help="also check a model of this shape")
    parser.add_argument("--layers", type=int, help="layers of the --shape model (default: the shape's)")
    parser.add_argument("--bits", type=float, default=4.0, help="bits per weight of the --shape model")
    parser.add_argument("--formats", nargs="+", choices=["exl2", "exl3"], default=["exl2", "exl3"])
    parser.add_argument("--tokens", type=int, default=32, help="greedy tokens printed, and decode steps timed")
    parser.add_argument("--warmup", type=int, default=256, help="decode steps between the two")
    parser.add_argument("--out", type=Path, help="keep the models here (default: a temporary directory)")
    parser.add_argument("--model", type=Path, help=argparse.SUPPRESS)  # one model, in this process
    parser.add_argument("--format", choices=["exl2", "exl3"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.model:
        sys.exit(check_model(args.model, args.format, args.tokens, args.warmup))
    out = args.out or Path(tempfile.mkdtemp(prefix="synthetic-quant-"))
    plan = [("tiny", None, bits) for bits in (4.0, 4.65)] + (
        [(args.shape, args.layers, args.bits)] if args.shape else []
    )
    failed_runs = 0
    for form in args.formats:
        for shape, layers, bits in plan:
            model_dir = write(out, form, shape, layers, bits)
            if model_dir is None:
                continue
            command = [sys.executable, __file__, "--model", str(model_dir), "--format", form]
            command += ["--tokens", str(args.tokens), "--warmup", str(args.warmup)]
            status = subprocess.run(command, check=False).returncode
            failed_runs += status != 0
            if status not in (0, 1):
                report(False, f"checks of {model_dir.name}", f"the subprocess ended with status {status}")
            if not args.out:
                shutil.rmtree(model_dir, ignore_errors=True)
    print(f"writes: {RESULTS['PASS']} passed, {RESULTS['FAIL']} failed; model runs with a failure: {failed_runs}")
    sys.exit(1 if RESULTS["FAIL"] or failed_runs else 0)


if __name__ == "__main__":
    main()
