"""`atlas serve`: Atlas's OpenAI-compatible server for a local model, shared by many agent workers.

`engine` defines what a backend provides (importable without the `serve` extra, so backends can
implement it anywhere); `app` holds the HTTP server (`build_app`, `serve`), which needs FastAPI and
uvicorn (`pip install 'atlas-agent[serve]'`).
"""

from atlas_agent.serve.engine import Engine, Finish

__all__ = ["Engine", "Finish"]
