"""`atlas serve`: Atlas's OpenAI-compatible server for a local model, shared by many agent workers.

The engines it serves live with the model backends (`atlas_agent.models.engine`); `app` holds the
HTTP server (`build_app`, `serve`), which needs FastAPI and uvicorn (`pip install 'atlas-agent[serve]'`).
"""
