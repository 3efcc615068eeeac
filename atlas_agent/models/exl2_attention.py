"""A workaround for exllamav2 0.3.2's torch attention, used when flash-attn is not installed.

Its SDPA branch gives a prompt (more than one query position) no causal mask, so every position
attends to later ones (found layer by layer against transformers). Its matmul branch masks
correctly but is slower. A single decoded token needs no mask, so SDPA is right there: this routes
each forward pass to the branch that is correct for it, decode through SDPA and prompts through
matmul attention. exllamav2 is pinned to 0.3.2, its last release, so the method it wraps is fixed.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

_installed = False


def route_decode_through_sdpa() -> None:
    """Wraps `ExLlamaV2Attention._attn_torch` once per process; the wrapper reads `no_sdpa` per call."""
    global _installed
    if _installed:
        return
    from exllamav2.attn import ExLlamaV2Attention
    from torch.nn.attention import SDPBackend, sdpa_kernel

    without_cudnn = functools.partial(
        sdpa_kernel, [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]
    )
    ExLlamaV2Attention._attn_torch = _routed(ExLlamaV2Attention._attn_torch, without_cudnn)
    _installed = True


def _routed(attn_torch: Callable[..., Any], backends: Callable[[], Any]) -> Callable[..., Any]:
    @functools.wraps(attn_torch)
    def attention(
        self: Any, batch_size: int, q_len: int, q_states: Any, k_states: Any, v_states: Any,
        attn_params: Any, cfg: Any, causal: bool = True,
    ) -> Any:  # fmt: skip
        # `cfg` belongs to one model, whose forward passes all run on its runtime's driver thread
        saved = cfg.no_sdpa
        cfg.no_sdpa = saved or (causal and q_len > 1)
        try:
            with backends():
                return attn_torch(self, batch_size, q_len, q_states, k_states, v_states, attn_params, cfg, causal)
        finally:
            cfg.no_sdpa = saved

    return attention
