"""Task images built offline: the repository at its base commit and nothing after it."""

from __future__ import annotations

import pytest
from docker.errors import ImageNotFound

from atlas_agent.runtime.images import ENV_IMAGE, ensure_env_image
from atlas_agent.runtime.task_images import prepare_images
from atlas_agent.tasks import MINI_SUITE_DIR, load_tasks

pytestmark = pytest.mark.docker


def sh(docker_client, image: str, command: str) -> str:
    output = docker_client.containers.run(image, ["bash", "-c", command], network_mode="none", remove=True, stderr=True)
    return output.decode().strip()


def test_env_image_has_the_official_layout(docker_client) -> None:
    """The test runner lives in the testbed environment, reached only through activation."""
    assert ensure_env_image(docker_client) == ENV_IMAGE
    assert sh(docker_client, ENV_IMAGE, "python -m pytest --version || echo missing").endswith("missing")
    activated = "source /opt/miniconda3/bin/activate && conda activate testbed && python -m pytest --version"
    assert sh(docker_client, ENV_IMAGE, activated).startswith("pytest 8.")
    assert sh(docker_client, ENV_IMAGE, "bash -ic 'command -v pytest' 2>/dev/null") == (
        "/opt/miniconda3/envs/testbed/bin/pytest"
    )
    assert docker_client.images.get(ENV_IMAGE).attrs["Config"]["StopSignal"] == "SIGKILL"


def test_images_built_from_other_inputs_are_rebuilt(docker_client) -> None:
    """An image left by an older suite or layout is replaced, never reused: its inputs digest differs."""
    task = load_tasks("atlas-mini")[0]
    prepare_images(docker_client, [task], MINI_SUITE_DIR)
    # an image of that name from other inputs: a snapshot of the env image, without the task's digest
    repository, tag = task.image.rsplit(":", 1)
    holder = docker_client.containers.create(ENV_IMAGE, ["true"], network_mode="none")
    try:
        stale = holder.commit(repository=repository, tag=tag)
    finally:
        holder.remove(force=True)
    actions: list[str] = []
    prepare_images(docker_client, [task], MINI_SUITE_DIR, on_image=lambda _id, action: actions.append(action))
    prepare_images(docker_client, [task], MINI_SUITE_DIR, on_image=lambda _id, action: actions.append(action))
    assert actions == ["built", "present"]
    with pytest.raises(ImageNotFound):  # the replaced image is removed, not left behind nameless
        docker_client.images.get(stale.id)
    assert sh(docker_client, task.image, "git -C /testbed rev-parse HEAD") == task.base_commit


def test_task_image_holds_only_the_base_commit(docker_client) -> None:
    task = load_tasks("atlas-mini")[0]
    prepare_images(docker_client, [task], MINI_SUITE_DIR)
    image = docker_client.images.get(task.image)
    assert image.attrs["Config"]["StopSignal"] == "SIGKILL"
    facts = sh(
        docker_client,
        task.image,
        "cd /testbed && git rev-parse HEAD && git rev-list --all | wc -l && git remote | wc -l"
        " && (git reflog | wc -l) && (ls .git/logs 2>/dev/null | wc -l) && git status --porcelain | wc -l",
    ).split()
    assert facts == [task.base_commit, "1", "0", "0", "0", "0"]


def test_rebuild_is_deterministic(docker_client) -> None:
    """Forcing a rebuild recreates the same commit (the Dockerfile checks the hash itself)."""
    task = load_tasks("atlas-mini")[0]
    prepare_images(docker_client, [task], MINI_SUITE_DIR, force=True)
    assert sh(docker_client, task.image, "git -C /testbed rev-parse HEAD") == task.base_commit
