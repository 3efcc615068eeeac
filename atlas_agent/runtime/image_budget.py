"""Task images under a disk budget: each image is built or pulled just before its instance runs, and
least recently used task images make room. Never evicted: the base and environment images Atlas
builds (not task images), an image a container was created from, an image a worker of this process
holds (its instance is starting or running, the one about to start included).

Several workers start instances at once: holds are counted under one lock, and an image is removed
only while that lock shows nobody holds it, so an instance never loses its image between making it
and creating its container.
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker

from atlas_agent.errors import AtlasError, DiskFull
from atlas_agent.runtime.container import TaskContainer
from atlas_agent.runtime.image_store import EngineImage, ImageSet, last_use, remove_image, snapshot
from atlas_agent.runtime.image_usage import ImageUse, forget, image_key, load_usage, record_use
from atlas_agent.runtime.images import ensure_env_image
from atlas_agent.runtime.sizes import format_size
from atlas_agent.runtime.task_images import ImageTask, ensure_task_image, task_dockerfile, task_repo_label

# what the engine says when a build or pull cannot get disk
DISK_FULL = "no space left on device"

_holds_lock = threading.RLock()  # reentrant: a signal handler may release while its thread holds it
_holds: Counter[str] = Counter()
_making: dict[str, threading.Lock] = {}  # one build or pull of an image at a time
_evicting = threading.Lock()


@dataclass(frozen=True)
class Removal:
    image: EngineImage
    freed: int  # bytes of disk the removal gave back


@dataclass(frozen=True)
class Eviction:
    removed: list[Removal]
    footprint: int  # what task images take afterwards (ImageSet.task_footprint)

    @property
    def freed(self) -> int:
        return sum(removal.freed for removal in self.removed)


def evict(client: docker.DockerClient, budget: int | None) -> Eviction:
    """Removes least recently used task images until task images take at most `budget` bytes, or as
    little as removing every evictable one leaves; None removes every evictable task image."""
    with _evicting:
        images = snapshot(client)
        candidates = evictable(images, load_usage())
        chosen = candidates if budget is None else plan_eviction(images, candidates, budget)
        return _remove(client, images, chosen)


def evictable(images: ImageSet, usage: Mapping[str, ImageUse]) -> list[EngineImage]:
    """Task images no container uses and no worker holds, least recently used first."""
    held = held_names()
    free = [image for image in images.tasks if image.id not in images.in_use and held.isdisjoint(image.names)]
    return sorted(free, key=lambda image: last_use(image, usage))


def plan_eviction(images: ImageSet, candidates: list[EngineImage], budget: int) -> list[EngineImage]:
    """The least recently used `candidates` whose removal meets the budget (or the lowest footprint
    they can reach), less those whose removal frees nothing: an image whose layers all stay with an
    image that is kept (another task's of the same repository) would go for nothing."""
    target = max(budget, images.task_footprint([image.id for image in candidates]))
    chosen: list[str] = []
    for image in candidates:
        if images.task_footprint(chosen) <= target:
            break
        chosen.append(image.id)
    for image_id in reversed(list(chosen)):
        rest = [other for other in chosen if other != image_id]
        if images.task_footprint(rest) == images.task_footprint(chosen):
            chosen = rest
    return [image for image in candidates if image.id in chosen]


def _remove(client: docker.DockerClient, images: ImageSet, chosen: list[EngineImage]) -> Eviction:
    gone: list[str] = []
    removed: list[Removal] = []
    for image in chosen:
        with _holds_lock:  # a worker that took hold of it since the plan keeps it
            if not held_names().isdisjoint(image.names) or not remove_image(client, image):
                continue
        before = images.disk(gone)
        gone.append(image.id)
        removed.append(Removal(image, before - images.disk(gone)))
    if removed:
        with contextlib.suppress(DiskFull):  # records of images that are gone are never read
            forget(name for removal in removed for name in removal.image.names)
    return Eviction(removed, images.task_footprint(gone))


def hold(image: str) -> None:
    with _holds_lock:
        _holds[image_key(image)] += 1


def let_go(image: str) -> None:
    with _holds_lock:
        key = image_key(image)
        _holds[key] -= 1
        if _holds[key] <= 0:
            del _holds[key]


def held_names() -> frozenset[str]:
    with _holds_lock:
        return frozenset(_holds)


class ImageBudget:
    """One run's task images within `limit` bytes of disk (as `ImageSet.task_footprint` counts)."""

    def __init__(
        self,
        client: docker.DockerClient,
        limit: int,
        tasks: Iterable[ImageTask],
        task_repo: Path | None,
        notice: Callable[[str], None],
    ) -> None:
        self.client = client
        self.limit = limit
        self._tasks = {image_key(task.image): task for task in tasks}
        self._task_repo = task_repo
        self._dataset = task_repo_label(task_repo) if task_repo is not None else None
        self._notice = notice

    def start(self) -> None:
        """Before the first instance: the images task images build on, then the budget met."""
        if any(task_dockerfile(self._task_repo, task.instance_id) for task in self._tasks.values()):
            ensure_env_image(self.client)
        self._notice(
            f"image budget {format_size(self.limit)}: each task image is built or pulled just before its "
            "instance runs; the least recently used ones no instance needs are removed"
        )
        self.evict(self.limit)

    def acquire(self, task: ImageTask) -> None:
        """The task's image on disk and held until `release`, the budget met around it."""
        hold(task.image)
        try:
            self._make(task)
            self.evict(self.limit)
            self._record(task)
        except BaseException:
            let_go(task.image)
            raise

    def release(self, task: ImageTask) -> None:
        try:
            self._record(task)
        finally:
            let_go(task.image)

    def _record(self, task: ImageTask) -> None:
        # a full disk must not cost the instance: an unrecorded use only makes the image look older
        with contextlib.suppress(DiskFull):
            record_use(task.image, "ran", instance_id=task.instance_id, dataset=self._dataset)

    def evict(self, budget: int | None) -> None:
        for removal in evict(self.client, budget).removed:
            names = ", ".join(removal.image.names)
            self._notice(f"image budget: removed {names} ({format_size(removal.freed)} freed)")

    def _make(self, task: ImageTask) -> None:
        known = self._tasks.get(image_key(task.image), task)
        with _making_lock(task.image):
            self.evict(self.limit)  # room before a build or pull
            try:
                action = ensure_task_image(self.client, known, self._task_repo)
            except AtlasError as exc:
                if DISK_FULL not in str(exc).lower():
                    raise
                self.evict(0)  # the disk filled up anyway: everything no instance needs goes
                action = ensure_task_image(self.client, known, self._task_repo)
        if action != "present":
            self._notice(f"image budget: {action} {task.image} for {known.instance_id}")


def _making_lock(image: str) -> threading.Lock:
    with _holds_lock:
        return _making.setdefault(image_key(image), threading.Lock())


class BudgetedContainer(TaskContainer):
    """A task container whose image is made just before it starts and held until it is removed."""

    def __init__(self, budget: ImageBudget, task: ImageTask, client: docker.DockerClient, **options: Any) -> None:
        super().__init__(client, task.image, **options)
        self._budget = budget
        self._task = task
        self._holding = False
        self._hold_lock = threading.Lock()  # remove() may run twice at once: a worker's and a signal's

    def start(self) -> None:
        self._budget.acquire(self._task)
        with self._hold_lock:
            self._holding = True
        super().start()  # on failure it removes itself, which releases the image

    def remove(self) -> None:
        try:
            super().remove()
        finally:
            with self._hold_lock:
                holding, self._holding = self._holding, False
            if holding:
                self._budget.release(self._task)
