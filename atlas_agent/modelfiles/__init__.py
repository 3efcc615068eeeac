"""Model files, apart from running them: where bundled weights are, what a model needs in GPU memory
(`vram`), and converting models to EXL2 (`convert`)."""
