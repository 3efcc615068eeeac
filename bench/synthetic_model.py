"""Random-weight Llama-architecture models with real layer shapes, for GPU speed tests without a download.

    python bench/synthetic_model.py OUT [--shape qwen32b-layers --layers 8]

Decode speed depends on the bytes of the weights, not on their values, so a model with the layer
shape of Qwen2.5-Coder-32B (hidden 5120, MLP 27648, 40 query / 8 KV heads of 128) and a handful of
layers measures what one 32B layer costs. The tokenizer is a small byte-level BPE trained on
Atlas's own sources, with ChatML's special tokens, so chat prompts render and encode as usual.
Weights are FP16 safetensors, which ExLlamaV2 loads unquantized.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

SHAPES: dict[str, dict[str, int]] = {
    # one Qwen2.5-Coder-32B decoder layer is 487.6M parameters, 0.98 GB in FP16
    "qwen32b-layers": {"hidden_size": 5120, "intermediate_size": 27648, "num_attention_heads": 40,
                       "num_key_value_heads": 8, "num_hidden_layers": 8},
    # the whole of Qwen2.5-Coder-32B's decoder stack (the vocabulary stays the small one trained here)
    "qwen32b": {"hidden_size": 5120, "intermediate_size": 27648, "num_attention_heads": 40,
                "num_key_value_heads": 8, "num_hidden_layers": 64},
    # small enough to load in a second: for tests
    "tiny": {"hidden_size": 512, "intermediate_size": 1536, "num_attention_heads": 8,
             "num_key_value_heads": 2, "num_hidden_layers": 4},
}  # fmt: skip
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
VOCAB = 4096
SOURCES = Path(__file__).resolve().parent.parent / "atlas_agent"


def train_tokenizer(out: Path, vocab_size: int = VOCAB) -> int:
    """A byte-level BPE with ChatML specials; returns its vocabulary size (the model's vocab_size)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    corpus = [p.read_text(encoding="utf-8") for p in sorted(SOURCES.rglob("*.py"))]
    tokenizer.train_from_iterator(corpus, trainer=trainer)
    tokenizer.save(str(out / "tokenizer.json"))
    config = {"bos_token": "<|endoftext|>", "eos_token": "<|im_end|>", "tokenizer_class": "PreTrainedTokenizerFast"}
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    return int(tokenizer.get_vocab_size())


def write_config(out: Path, shape: dict[str, int], vocab_size: int, max_positions: int = 32768) -> dict[str, object]:
    config: dict[str, object] = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        **shape,
        "head_dim": shape["hidden_size"] // shape["num_attention_heads"],
        "vocab_size": vocab_size,
        "max_position_embeddings": max_positions,
        "rms_norm_eps": 1e-6,
        "rope_theta": 1000000.0,
        "hidden_act": "silu",
        "tie_word_embeddings": False,
        "torch_dtype": "float16",
        "bos_token_id": 0,  # the first special token, <|endoftext|>
        "eos_token_id": 2,  # <|im_end|>
    }
    (out / "config.json").write_text(json.dumps(config, indent=2))
    return config


def write_weights(out: Path, config: dict[str, object], device: str, seed: int = 0) -> int:
    """Random FP16 weights (std 0.02, unit norms) in one safetensors file; returns their bytes."""
    import torch
    from safetensors.torch import save_file

    generator = torch.Generator(device=device).manual_seed(seed)
    h, m, v = int(config["hidden_size"]), int(config["intermediate_size"]), int(config["vocab_size"])  # type: ignore[call-overload]
    head_dim, kv = int(config["head_dim"]), int(config["num_key_value_heads"])  # type: ignore[call-overload]
    q = int(config["num_attention_heads"]) * head_dim  # type: ignore[call-overload]

    def rand(*dims: int) -> torch.Tensor:
        return (torch.randn(*dims, generator=generator, device=device, dtype=torch.float16) * 0.02).cpu()

    tensors = {"model.embed_tokens.weight": rand(v, h), "model.norm.weight": torch.ones(h, dtype=torch.float16)}
    tensors["lm_head.weight"] = rand(v, h)
    for i in range(int(config["num_hidden_layers"])):  # type: ignore[call-overload]
        p = f"model.layers.{i}."
        tensors |= {
            p + "input_layernorm.weight": torch.ones(h, dtype=torch.float16),
            p + "post_attention_layernorm.weight": torch.ones(h, dtype=torch.float16),
            p + "self_attn.q_proj.weight": rand(q, h),
            p + "self_attn.k_proj.weight": rand(kv * head_dim, h),
            p + "self_attn.v_proj.weight": rand(kv * head_dim, h),
            p + "self_attn.o_proj.weight": rand(h, q),
            p + "mlp.gate_proj.weight": rand(m, h),
            p + "mlp.up_proj.weight": rand(m, h),
            p + "mlp.down_proj.weight": rand(h, m),
        }
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    return sum(t.numel() * t.element_size() for t in tensors.values())


def make_model(out: Path, shape: str = "tiny", layers: int | None = None, device: str = "cuda") -> Path:
    """Write a random model directory to `out` (created) and return it."""
    out.mkdir(parents=True, exist_ok=True)
    dims = dict(SHAPES[shape])
    if layers:
        dims["num_hidden_layers"] = layers
    vocab = train_tokenizer(out)
    write_weights(out, write_config(out, dims, vocab), device)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="qwen32b-layers")
    parser.add_argument("--layers", type=int, default=None)
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    print(make_model(args.out, args.shape, args.layers, args.device))


if __name__ == "__main__":
    main()
