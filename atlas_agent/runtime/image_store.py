"""The task images on the engine and the disk they take.

Images share layers: every atlas-mini task image sits on the same base and environment layers, and
official SWE-bench images of one repository version share their environment's. Docker's own `Size`
counts every layer of an image, shared or not, so sizes are counted here layer by layer: each layer
once, however many images hold it. A layer's size comes from the image's history (the entries that
add bytes, oldest first, line up with its layers); a layer's identity is its chain id, the same in
every image built on it. Summed over all images this is exactly `docker system df`'s layer total.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import docker
from docker.errors import APIError, NotFound

from atlas_agent.errors import AtlasError
from atlas_agent.runtime.image_usage import ImageUse, image_key, load_usage
from atlas_agent.runtime.images import BASE_IMAGE, ENV_IMAGE

# Official instance images are `<namespace>/sweb.eval.<arch>.<instance id, "__" as "_1776_">:<tag>`.
TASK_IMAGE_PREFIX = "sweb.eval."
# The images task images are built on: never evicted, their layers never counted against a budget.
ATLAS_IMAGES = frozenset({BASE_IMAGE, ENV_IMAGE})

Layer = tuple[str, int]  # (chain id, bytes)
_LAYERS: dict[str, tuple[Layer, ...]] = {}  # an image id always names the same layers
_LAYERS_LOCK = threading.Lock()


@dataclass(frozen=True)
class EngineImage:
    id: str
    names: tuple[str, ...]  # its tags, spelled as `image_key` spells them
    created: datetime
    size: int  # every layer it holds, as `docker images` says
    layers: tuple[Layer, ...]


@dataclass
class ImageSet:
    """Every image on the engine, which of them are task images, and which a container uses."""

    images: list[EngineImage]
    task_ids: frozenset[str]
    in_use: frozenset[str]  # ids of images a container (running or not) was created from
    _holders: dict[str, set[str]] = field(default_factory=dict, init=False)
    _sizes: dict[str, int] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        for image in self.images:
            for key, size in image.layers:
                self._holders.setdefault(key, set()).add(image.id)
                self._sizes[key] = size

    @property
    def tasks(self) -> list[EngineImage]:
        return [image for image in self.images if image.id in self.task_ids]

    def disk(self, without: Collection[str] = ()) -> int:
        """Bytes of every layer some image holds, once each, with the images `without` gone."""
        return sum(size for key, size in self._sizes.items() if self._holders[key].difference(without))

    def task_footprint(self, without: Collection[str] = ()) -> int:
        """Bytes that task images hold and no other image does: what removing every task image frees,
        and what an image budget counts. `without`: image ids counted as removed."""
        total = 0
        for key, size in self._sizes.items():
            holders = self._holders[key]
            if holders <= self.task_ids and holders.difference(without):
                total += size
        return total

    def unique(self, image: EngineImage) -> int:
        """Bytes only this image holds: what removing it alone frees."""
        return sum(size for key, size in image.layers if self._holders[key] == {image.id})


def snapshot(client: docker.DockerClient) -> ImageSet:
    """The engine's images now (dangling ones included: their layers take disk too)."""
    recorded = set(load_usage())
    images = []
    for row in client.api.images():
        try:
            layers = image_layers(client, row["Id"])
        except NotFound:  # removed since the listing (ImageNotFound is a NotFound)
            continue
        names = tuple(image_key(tag) for tag in row.get("RepoTags") or () if tag != "<none>:<none>")
        created = datetime.fromtimestamp(int(row.get("Created") or 0), UTC)
        images.append(EngineImage(row["Id"], names, created, int(row.get("Size") or 0), layers))
    task_ids = frozenset(image.id for image in images if is_task_image(image.names, recorded))
    in_use = frozenset(str(container["ImageID"]) for container in client.api.containers(all=True))
    return ImageSet(images, task_ids, in_use)


def is_task_image(names: Iterable[str], recorded: Collection[str]) -> bool:
    """Every name is a task image's: an official instance image, or one Atlas used for a task. An
    image that also carries another name is someone else's too and stays."""
    names = list(names)
    return bool(names) and all(
        name not in ATLAS_IMAGES and (name in recorded or _repository(name).startswith(TASK_IMAGE_PREFIX))
        for name in names
    )


def image_layers(client: docker.DockerClient, image_id: str) -> tuple[Layer, ...]:
    with _LAYERS_LOCK:
        cached = _LAYERS.get(image_id)
    if cached is not None:
        return cached
    image = client.images.get(image_id)
    diff_ids = image.attrs["RootFS"].get("Layers") or []
    sizes = [int(entry["Size"]) for entry in reversed(image.history()) if int(entry["Size"]) > 0]
    chain = chain_ids(diff_ids)
    if len(sizes) == len(chain):
        layers = tuple(zip(chain, sizes, strict=True))
    else:
        # layers of zero bytes hide which history entry is which layer: the image's layers are then
        # counted as its own, never as less than the disk they take
        top = chain[-1] if chain else image_id
        layers = tuple((f"{top}#{number}", size) for number, size in enumerate(sizes))
    with _LAYERS_LOCK:
        _LAYERS[image_id] = layers
    return layers


def chain_ids(diff_ids: list[str]) -> list[str]:
    """The OCI chain id of each layer: the identity of that layer on top of all those below it."""
    chain: list[str] = []
    for diff_id in diff_ids:
        below = f"{chain[-1]} {diff_id}" if chain else None
        chain.append(diff_id if below is None else "sha256:" + hashlib.sha256(below.encode()).hexdigest())
    return chain


def last_use(image: EngineImage, usage: Mapping[str, ImageUse]) -> datetime:
    """When Atlas last ran, built or pulled it; its creation time when Atlas never touched it."""
    recorded = [usage[name].last_used for name in image.names if name in usage]
    return max(recorded) if recorded else image.created


def instance_of(image: EngineImage, usage: Mapping[str, ImageUse]) -> str | None:
    """The task instance it serves: recorded, or read from an official image name."""
    for name in image.names:
        if name in usage and usage[name].instance_id:
            return usage[name].instance_id
    for name in image.names:
        repository = _repository(name)
        if repository.startswith(TASK_IMAGE_PREFIX):
            # sweb.eval.<arch>.<id>: the arch has no dot, the id may
            return repository.removeprefix(TASK_IMAGE_PREFIX).partition(".")[2].replace("_1776_", "__") or None
    return None


def remove_image(client: docker.DockerClient, image: EngineImage) -> bool:
    """Untags each of its names (the last one deletes what no other image holds); False when a
    container uses it. Never forced."""
    for name in image.names:
        try:
            client.api.remove_image(name, force=False, noprune=False)
        except NotFound:
            continue
        except APIError as exc:
            if exc.status_code == 409:  # a container was created from it meanwhile
                return False
            reason = " ".join(str(exc.explanation or exc).split())
            raise AtlasError(f"cannot remove image {name}: {reason}") from None
    return True


def _repository(name: str) -> str:
    """The repository name's last part: `swebench/sweb.eval.x86_64.a-1:latest` → `sweb.eval.x86_64.a-1`."""
    path = name.split("@", 1)[0]
    last = path.rsplit("/", 1)[-1]
    return last.rsplit(":", 1)[0]
