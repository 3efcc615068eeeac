"""Offline image building: a Debian base from packages, a Python test environment from a local
wheelhouse, and per-task images with the repository at its base commit.

Nothing here reaches a registry except `pull` for official SWE-bench images that are missing
locally (on machines that can). Every build runs with network mode `none`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import docker
from docker.errors import APIError, BuildError, ImageNotFound

from atlas_agent.errors import AtlasError, ImageMissing

BASE_IMAGE = "atlas/base:bookworm"
ENV_IMAGE = "atlas/env:bookworm-py311"
# Pure-Python wheels installed into the task environment; pinned so every image is the same.
ENV_REQUIREMENTS = ("pytest==8.3.5",)
BASE_PACKAGES = ("python3", "python3-venv", "git", "patch", "ca-certificates")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# Build-context entries that must never reach an image: they change the base commit's tree.
CONTEXT_IGNORE = shutil.ignore_patterns("__pycache__", ".pytest_cache", "*.pyc")

# The official instance-image layout: a base interpreter without the repository's dependencies first
# on PATH; the test environment /opt/miniconda3/envs/testbed activated only by /root/.bashrc and by
# the eval scripts' own `source /opt/miniconda3/bin/activate` + `conda activate testbed`.
CONDA_PREFIX = "/opt/miniconda3"
ENV_DOCKERFILE = """\
FROM {base}
COPY wheels/ /tmp/wheels/
COPY install.sh /tmp/install-testbed.sh
RUN bash /tmp/install-testbed.sh {prefix} /tmp/wheels {requirements} \\
 && echo 'source {prefix}/etc/profile.d/conda.sh && conda activate testbed' >> /root/.bashrc \\
 && rm -rf /tmp/wheels /tmp/install-testbed.sh /root/.cache \\
 && mkdir -p /testbed
ENV PATH={prefix}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
WORKDIR /testbed
STOPSIGNAL SIGKILL
"""
TESTBED_INSTALLER = Path(__file__).resolve().parent / "testbed" / "install.sh"
# An image built from other inputs than today's is rebuilt, not reused: its label says which inputs.
DIGEST_LABEL = "atlas.inputs-digest"


def cache_dir() -> Path:
    root = os.environ.get("ATLAS_CACHE_DIR") or Path.home() / ".cache" / "atlas"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def image_exists(client: docker.DockerClient, name: str) -> bool:
    try:
        client.images.get(name)
    except ImageNotFound:
        return False
    return True


def debian_mirror() -> str:
    """The mirror apt already uses here, so debootstrap works wherever `apt-get` does."""
    if env := os.environ.get("ATLAS_DEBIAN_MIRROR"):
        return env
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    if sources.is_file():
        for line in sources.read_text().splitlines():
            if line.startswith("URIs:") and "security" not in line:
                return line.split(":", 1)[1].strip()
    return DEFAULT_MIRROR


def ensure_base_image(client: docker.DockerClient, *, force: bool = False) -> str:
    """Debian bookworm minbase with python3, git and patch, imported from a debootstrap root."""
    if not force and image_exists(client, BASE_IMAGE):
        return BASE_IMAGE
    if shutil.which("debootstrap") is None:
        raise AtlasError("debootstrap is not installed: run `apt-get install -y debootstrap` (as root)")
    with tempfile.TemporaryDirectory(prefix="atlas-rootfs-") as tmp:
        rootfs, tarball = Path(tmp) / "rootfs", Path(tmp) / "rootfs.tar"
        _run_logged(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(BASE_PACKAGES)}",
                "bookworm",
                str(rootfs),
                debian_mirror(),
            ],
            log_name="debootstrap.log",
        )
        _run_logged(["tar", "-C", str(rootfs), "-cf", str(tarball), "."], log_name="rootfs-tar.log")
        repository, tag = BASE_IMAGE.split(":")
        client.api.import_image_from_file(str(tarball), repository=repository, tag=tag)
    return BASE_IMAGE


def ensure_env_image(client: docker.DockerClient, *, force: bool = False) -> str:
    """The base plus the official conda-style layout (a stand-in for conda, the test environment
    installed from a host-side wheelhouse); rebuilt when its recipe changed."""
    base = ensure_base_image(client)
    dockerfile = ENV_DOCKERFILE.format(base=base, prefix=CONDA_PREFIX, requirements=" ".join(ENV_REQUIREMENTS))
    digest = _digest([dockerfile.encode(), TESTBED_INSTALLER.read_bytes(), _image_id(client, base).encode()])
    if not force and image_digest(client, ENV_IMAGE) == digest:
        return ENV_IMAGE
    with tempfile.TemporaryDirectory(prefix="atlas-env-") as tmp:
        context = Path(tmp)
        shutil.copytree(wheelhouse(), context / "wheels")
        shutil.copy(TESTBED_INSTALLER, context / "install.sh")
        (context / "Dockerfile").write_text(dockerfile)
        build_image(client, context, ENV_IMAGE, labels={DIGEST_LABEL: digest})
    return ENV_IMAGE


def image_digest(client: docker.DockerClient, name: str) -> str | None:
    """The inputs digest an Atlas-built image carries; None when absent (or not built by Atlas)."""
    try:
        labels = client.images.get(name).labels or {}
    except ImageNotFound:
        return None
    return labels.get(DIGEST_LABEL)


def context_digest(context: Path, client: docker.DockerClient) -> str:
    """What a build from `context` depends on: every file's path and bytes, and the image it starts FROM."""
    parts = [_parent_id(context / "Dockerfile", client).encode()]
    for path in sorted(p for p in context.rglob("*") if p.is_file()):
        parts += [str(path.relative_to(context)).encode(), path.read_bytes()]
    return _digest(parts)


def _image_id(client: docker.DockerClient, name: str) -> str:
    return str(client.images.get(name).id)


def _parent_id(dockerfile: Path, client: docker.DockerClient) -> str:
    """The id of the local image a Dockerfile starts FROM (its name when it is not here)."""
    text = dockerfile.read_text() if dockerfile.is_file() else ""
    parent = next((line.split()[1] for line in text.splitlines() if line.upper().startswith("FROM ")), "")
    try:
        return _image_id(client, parent) if parent else ""
    except ImageNotFound:
        return parent


def _digest(parts: Iterable[bytes]) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()[:16]


def wheelhouse() -> Path:
    """Wheels for ENV_REQUIREMENTS, downloaded once on the host (the only step that needs PyPI)."""
    target = cache_dir() / "wheelhouse" / "py311"
    marker = target / ".complete"
    if marker.is_file() and marker.read_text() == "\n".join(ENV_REQUIREMENTS):
        return target
    target.mkdir(parents=True, exist_ok=True)
    _run_logged(
        [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--quiet"]
        + ["--only-binary=:all:", "--python-version", "3.11", "-d", str(target), *ENV_REQUIREMENTS],
        log_name="wheelhouse.log",
    )
    marker.write_text("\n".join(ENV_REQUIREMENTS))
    return target


def build_image(client: docker.DockerClient, context: Path, tag: str, labels: dict[str, str] | None = None) -> None:
    """Classic (non-BuildKit) build with no network; failures become one line plus a log file."""
    log_path = cache_dir() / "build-logs" / f"{_safe(tag)}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    replaced = _image_id(client, tag) if image_exists(client, tag) else None
    try:
        image, logs = client.images.build(
            path=str(context), tag=tag, network_mode="none", rm=True, forcerm=True, pull=False, labels=labels
        )
        log_path.write_text(_log_text(logs))
    except BuildError as exc:
        log_path.write_text(_log_text(exc.build_log))
        raise AtlasError(f"building image {tag} failed: {exc.msg.strip()} (full log: {log_path})") from exc
    except APIError as exc:
        raise AtlasError(f"building image {tag} failed: {exc.explanation} (log: {log_path})") from exc
    if replaced and replaced != image.id:
        _remove_untagged(client, replaced)


def _remove_untagged(client: docker.DockerClient, image_id: str) -> None:
    """A rebuilt image's predecessor, now nameless, would only fill the disk: remove it unless a
    container or a child image still uses it."""
    with contextlib.suppress(APIError):
        client.images.remove(image_id, noprune=False)


def build_task_image(
    client: docker.DockerClient, task_dir: Path, repos_dir: Path, image: str, repo: str, *, force: bool = False
) -> bool:
    """Build one task image from its task directory (the official task-repo layout), unless an image
    built from the same inputs is present; True when it built.

    The context is the task directory itself, plus `repo/` holding the repository source when
    the task repo ships it under `repos/<name>/` (Atlas's own suites do).
    """
    ensure_env_image(client)
    with tempfile.TemporaryDirectory(prefix="atlas-task-") as tmp:
        context = Path(tmp) / "context"
        shutil.copytree(task_dir, context, ignore=CONTEXT_IGNORE)
        source = repos_dir / repo.split("/")[-1]
        if source.is_dir():
            shutil.copytree(source, context / "repo", ignore=CONTEXT_IGNORE)
        digest = context_digest(context, client)
        if not force and image_digest(client, image) == digest:
            return False
        build_image(client, context, image, labels={DIGEST_LABEL: digest})
    return True


def ensure_image_present(client: docker.DockerClient, image: str) -> None:
    """Official SWE-bench images: use the local copy, pull when missing, fail in one line otherwise."""
    if image_exists(client, image):
        return
    try:
        client.images.pull(image)
    except (APIError, ImageNotFound) as exc:
        reason = getattr(exc, "explanation", None) or str(exc)
        raise ImageMissing(
            f"image {image} is not present locally and could not be pulled ({reason.splitlines()[0]}): "
            "build it with `atlas images build` or pull it on a machine with network access"
        ) from exc


def missing_images(client: docker.DockerClient, images: Iterable[str]) -> list[str]:
    return [name for name in images if not image_exists(client, name)]


def _run_logged(cmd: list[str], *, log_name: str) -> None:
    log_path = cache_dir() / "build-logs" / log_name
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as log:
        result = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise AtlasError(f"`{cmd[0]}` failed (exit {result.returncode}): {tail[0]} (full log: {log_path})")


def _log_text(chunks: Iterable[Any]) -> str:
    """Docker's build log is a stream of dicts holding `stream` or `error` text."""
    parts = []
    for chunk in chunks:
        if isinstance(chunk, dict):
            parts.append(str(chunk.get("stream") or chunk.get("error") or ""))
    return "".join(parts)


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
