"""When Atlas last used each task image. Docker records when an image was created or tagged, never
when a container last ran from it, so least-recently-used eviction keeps its own record: one JSON
file in Atlas's cache directory, rewritten atomically under a file lock (several processes and
worker threads may record at once)."""

from __future__ import annotations

import fcntl
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ValidationError

from atlas_agent.fsutil import write_atomic
from atlas_agent.runtime.images import cache_dir

USAGE_FILE = "image-usage.json"
Event = Literal["ran", "built", "pulled"]


class ImageUse(BaseModel):
    last_used: datetime
    event: Event  # what Atlas last did with it: ran a container from it, built it or pulled it
    instance_id: str | None = None
    dataset: str | None = None  # the task repo it was built from or the dataset that named it, when known


def image_key(name: str) -> str:
    """One spelling per image name: `docker.io/` and `library/` dropped, `:latest` made explicit."""
    name = name.removeprefix("docker.io/").removeprefix("library/")
    if "@" not in name and ":" not in name.rsplit("/", 1)[-1]:
        name += ":latest"
    return name


def usage_path() -> Path:
    return cache_dir() / USAGE_FILE


def load_usage() -> dict[str, ImageUse]:
    """Every recorded image; a missing or damaged record reads as empty (its images count as unused)."""
    try:
        raw = json.loads(usage_path().read_text())
        return {name: ImageUse.model_validate(entry) for name, entry in raw.get("images", {}).items()}
    except (OSError, ValueError, AttributeError, ValidationError):
        return {}


def record_use(image: str, event: Event, *, instance_id: str | None = None, dataset: str | None = None) -> None:
    """Now is the image's last use; what is known of its task is kept from earlier records."""
    with _locked():
        usage = load_usage()
        key = image_key(image)
        before = usage.get(key)
        usage[key] = ImageUse(
            last_used=datetime.now(UTC),
            event=event,
            instance_id=instance_id or (before.instance_id if before else None),
            dataset=dataset or (before.dataset if before else None),
        )
        _save(usage)


def forget(images: Iterable[str]) -> None:
    """Drops the records of images no longer on disk."""
    with _locked():
        usage = load_usage()
        for image in images:
            usage.pop(image_key(image), None)
        _save(usage)


def _save(usage: dict[str, ImageUse]) -> None:
    images = {name: entry.model_dump(mode="json") for name, entry in sorted(usage.items())}
    write_atomic(usage_path(), json.dumps({"images": images}, indent=1) + "\n")


@contextmanager
def _locked() -> Iterator[None]:
    """Excludes other processes and threads: each `open` is its own lock holder for flock."""
    with (cache_dir() / f"{USAGE_FILE}.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
