"""User-facing errors: each carries one actionable line, printed by the CLI without a traceback."""


class AtlasError(Exception):
    """An error whose message is complete and actionable on its own."""


class DatasetError(AtlasError):
    """A dataset could not be loaded, or a row in it is malformed."""


class DockerUnavailable(AtlasError):
    """The Docker engine cannot be reached."""


class ImageMissing(AtlasError):
    """A task image is neither present locally nor pullable."""


class ModelError(AtlasError):
    """The backend could not produce a turn (dead server, exhausted script, refused request)."""


class ContextOverflow(ModelError):
    """The prompt does not fit the model's context window (never retried: it would fail again)."""


class EngineLost(AtlasError):
    """The Docker engine stopped answering in the middle of a run (restarted, crashed, socket gone)."""


class DiskFull(AtlasError):
    """A run file could not be written: no space left on its disk (or the user's quota is used up)."""


class RunStopping(AtlasError):
    """The run is stopping (a signal, a full disk, a lost engine): nothing new may start."""
