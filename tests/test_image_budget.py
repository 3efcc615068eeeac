"""Task images under a disk budget: a run evicts least recently used images and makes its own again,
sizes count shared layers once, `atlas images ls | pull | prune`.

These tests remove task images from the engine, the atlas-mini ones included; other tests expect
those, so the `suite` fixture builds them again afterwards."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from docker.errors import APIError

from atlas_agent.runtime.config import DockerRuntime, WorkspaceRequest
from atlas_agent.runtime.image_budget import plan_eviction
from atlas_agent.runtime.image_store import EngineImage, ImageSet, snapshot
from atlas_agent.runtime.image_usage import image_key
from atlas_agent.runtime.images import BASE_IMAGE, ENV_IMAGE, image_exists
from atlas_agent.runtime.orphans import list_containers
from atlas_agent.runtime.task_images import prepare_images
from atlas_agent.tasks import MINI_SUITE_DIR, Task, load_tasks
from helpers import atlas, one_line_error

FLAKY_TASKS = Path(__file__).parent / "data" / "flaky-tasks"
# one task of each of three repositories (the images of one repository's tasks share all their layers)
TALLY, HOARD, TEXTKIT = "budget__tally-1", "budget__hoard-1", "budget__textkit-1"


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory, docker_client) -> Iterator[Path]:
    """Three atlas-mini tasks under ids and image names of their own, each image on layers of its own (a
    step before the repository's): no other test uses them, and removing one frees its layers."""
    root = tmp_path_factory.mktemp("budget-suite")
    shutil.copytree(MINI_SUITE_DIR / "repos", root / "repos")
    (root / "sweb.yaml").write_text(yaml.safe_dump({"datasets": ["budget-suite"], "splits": ["test"]}))
    for instance_id in (TALLY, HOARD, TEXTKIT):
        task_dir = root / "tasks" / instance_id
        shutil.copytree(MINI_SUITE_DIR / "tasks" / instance_id.replace("budget__", "atlas__"), task_dir)
        meta = yaml.safe_load((task_dir / "task.yaml").read_text())
        image = meta["image"].replace("atlas_1776_", "budget_1776_")
        meta |= {"instance_id": instance_id, "image": image, "datasets": ["budget-suite"]}
        (task_dir / "task.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
        base, rest = (task_dir / "Dockerfile").read_text().split("\n", 1)
        (task_dir / "Dockerfile").write_text(f"{base}\nRUN echo {instance_id} > /etc/budget-test\n{rest}")
    yield root
    for task in load_tasks(str(root)):
        with contextlib.suppress(APIError):  # already gone
            docker_client.images.remove(task.image)
    prepare_images(docker_client, load_tasks("atlas-mini"), MINI_SUITE_DIR)
    prepare_images(docker_client, load_tasks(str(FLAKY_TASKS)), FLAKY_TASKS)


@pytest.fixture
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache directory of the test's own, so the record of last uses starts empty (inherited by `atlas`)."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("ATLAS_CACHE_DIR", str(cache))
    return cache


def tasks_of(suite: Path, *instance_ids: str) -> list[Task]:
    by_id = {task.instance_id: task for task in load_tasks(str(suite))}
    return [by_id[instance_id] for instance_id in instance_ids]


def request(task: Task, suite: Path) -> WorkspaceRequest:
    return WorkspaceRequest(
        run_id="test-image-budget",
        instance_id=task.instance_id,
        image=task.image,
        repo=task.repo,
        eval_script=task.eval_script,
        task_repo=suite,
    )


def task_image_names(images: ImageSet) -> set[str]:
    return {name for image in images.tasks for name in image.names}


def in_use_names(images: ImageSet) -> set[str]:
    """Task images that containers use: those of other processes on this engine stay whatever the budget."""
    return {name for image in images.tasks if image.id in images.in_use for name in image.names}


def removed_names(output: str) -> list[str]:
    return re.findall(r"^removed (\S+) \(", output, re.M)


def made_then_removed(output: str, task: Task) -> bool:
    made = output.find(f"image budget: built {image_key(task.image)} ")
    return made >= 0 and output.find(f"image budget: removed {image_key(task.image)} (", made) > made


def listed(output: str, task: Task) -> str:
    [line] = [line for line in output.splitlines() if line.startswith(image_key(task.image) + " ")]
    return line


@pytest.mark.docker
def test_a_run_under_a_tiny_budget_evicts_images_and_completes_every_instance(
    tmp_path: Path, own_cache: Path, docker_client, suite: Path
) -> None:
    tasks = tasks_of(suite, TALLY, HOARD, TEXTKIT)
    script = tmp_path / "script.yaml"
    script.write_text(yaml.safe_dump({"default": [{"bash": "git rev-parse HEAD"}, "submit"]}))
    ids = ",".join(task.instance_id for task in tasks)
    args = ["run", "--dataset", str(suite), "--instances", ids, "--model", f"replay:{script}", "--run-id", "tight"]
    result = atlas(*args, "--workers", "2", "--image-budget", "1B", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for task in tasks:
        status = json.loads((tmp_path / "runs" / "tight" / "instances" / task.instance_id / "status.json").read_text())
        assert status["state"] == "done" and status["stop_reason"] == "submitted", status
        assert f"image budget: built {image_key(task.image)} for {task.instance_id}" in result.stderr
    # when the third instance started, one of the first two had finished: its image made room
    assert any(made_then_removed(result.stderr, task) for task in tasks), result.stderr
    # of the run's images, only what an instance still running held when the last one started may stay
    left = task_image_names(snapshot(docker_client)) & {image_key(task.image) for task in tasks}
    assert len(left) <= 2, left
    assert image_exists(docker_client, ENV_IMAGE) and image_exists(docker_client, BASE_IMAGE)
    assert not list_containers(docker_client, run_id="tight")
    listing = atlas("images", "ls", cwd=tmp_path).stdout
    for task in tasks:
        if image_key(task.image) in left:
            line = listed(listing, task)
            assert "(ran)" in line and task.instance_id in line and "budget-suite" in line, line

    # the budget is a setting of the command, not of the run: a resume may ask for another
    resumed = atlas(*args, "--image-budget", "2GB", cwd=tmp_path)
    assert resumed.returncode == 0 and "3 already done" in resumed.stderr, resumed.stderr


@pytest.mark.docker
def test_prune_to_a_budget_removes_the_least_recently_used_first(
    tmp_path: Path, own_cache: Path, docker_client, suite: Path
) -> None:
    tally, hoard, textkit = tasks_of(suite, TALLY, HOARD, TEXTKIT)
    assert atlas("images", "prune", "--all", cwd=tmp_path).returncode == 0
    for task in (tally, hoard, textkit):  # built in this order...
        prepare_images(docker_client, [task], suite)
    runtime = DockerRuntime(image_budget=10 * 2**30)
    for task in (textkit, tally, hoard):  # ...and used in this one: textkit is the least recently used
        with runtime.open_workspace(request(task, suite)) as workspace:
            assert workspace.run("git rev-parse HEAD").output.strip() == task.base_commit
    listing = atlas("images", "ls", cwd=tmp_path).stdout
    for task in (textkit, tally, hoard):
        line = listed(listing, task)
        assert "(ran)" in line and task.instance_id in line and "budget-suite" in line, line

    images = snapshot(docker_client)
    unique = {name: images.unique(image) for image in images.tasks for name in image.names}
    sizes = [unique[image_key(task.image)] for task in (textkit, tally, hoard)]
    # a budget that fits hoard alone: removing the largest first, or the first built, would keep another
    assert 0 < sizes[0] < sizes[1] < sizes[2], sizes
    others = [image.id for image in images.tasks if image.id not in images.in_use]
    budget = sizes[2] + images.task_footprint(others)  # plus what containers of other processes use
    pruned = atlas("images", "prune", "--budget", f"{budget}B", cwd=tmp_path)
    assert pruned.returncode == 0, pruned.stderr
    ours = {image_key(task.image) for task in (textkit, tally, hoard)}
    # other processes may have made task images meanwhile, which go too; ours go in the order of use
    removed = [name for name in removed_names(pruned.stdout) if name in ours]
    assert removed == [image_key(textkit.image), image_key(tally.image)], pruned.stdout
    images = snapshot(docker_client)
    assert task_image_names(images) - in_use_names(images) == {image_key(hoard.image)}


@pytest.mark.docker
def test_prune_keeps_images_that_containers_use_and_atlas_own_images(
    tmp_path: Path, own_cache: Path, docker_client, suite: Path
) -> None:
    [task] = tasks_of(suite, TALLY)
    prepare_images(docker_client, [task], suite)
    with DockerRuntime().open_workspace(request(task, suite)):
        assert listed(atlas("images", "ls", cwd=tmp_path).stdout, task).split()[-1] == "yes"  # IN USE
        pruned = atlas("images", "prune", "--all", cwd=tmp_path)
        assert pruned.returncode == 0 and image_key(task.image) not in removed_names(pruned.stdout), pruned.stdout
        assert image_exists(docker_client, task.image)
    pruned = atlas("images", "prune", "--all", cwd=tmp_path)
    assert image_key(task.image) in removed_names(pruned.stdout), pruned.stdout
    assert image_exists(docker_client, ENV_IMAGE) and image_exists(docker_client, BASE_IMAGE)


@pytest.mark.docker
def test_sizes_count_each_shared_layer_once_as_docker_does(docker_client) -> None:
    """`docker system df`: its layer total is the disk of all images; Size - SharedSize what only one holds."""
    for _ in range(3):  # another process may build or remove an image between the two readings
        images, usage = snapshot(docker_client), docker_client.df()
        if {image.id for image in images.images} == {row["Id"] for row in usage["Images"]}:
            break
    assert images.disk() == usage["LayersSize"]
    only_theirs = {row["Id"]: row["Size"] - row["SharedSize"] for row in usage["Images"]}
    assert {image.id: images.unique(image) for image in images.images} == only_theirs
    # the task images' footprint leaves out what the env image keeps anyway
    env = next(image for image in images.images if ENV_IMAGE in image.names)
    assert images.task_footprint() <= images.disk() - env.size


def layered(name: str, *layers: tuple[str, int]) -> EngineImage:
    return EngineImage(name, (name,), datetime.now(UTC), sum(size for _, size in layers), layers)


def test_eviction_goes_by_last_use_and_never_removes_an_image_for_nothing() -> None:
    """The base layer stays with the env image; a and its sibling a2 hold the same layer."""
    base = ("base", 1000)
    env, a, a2 = layered("env", base), layered("a", base, ("la", 10)), layered("a2", base, ("la", 10))
    c, d = layered("c", base, ("lc", 20)), layered("d", base, ("ld", 30))
    images = ImageSet([env, a, a2, c, d], frozenset({"a", "a2", "c", "d"}), frozenset())
    assert images.task_footprint() == 60 and images.unique(a) == 0 and images.unique(c) == 20

    def planned(candidates: list[EngineImage], budget: int) -> list[str]:
        return [image.id for image in plan_eviction(images, candidates, budget)]

    assert planned([d, c, a], 35) == ["d"]  # the least recently used first, not the largest or smallest
    assert planned([a, c, d], 40) == ["c"]  # a2 (held, not a candidate) keeps a's layer: a would go for nothing
    assert planned([a, a2, c, d], 50) == ["a", "a2"]  # together they free their layer
    assert planned([a, c], 0) == ["c"]  # as low as the candidates can go


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["run", "--image-budget", "12XB", "--model", "replay:x.yaml"], "--image-budget: cannot read '12XB' as a size"),
        (["images", "prune", "--budget", "lots"], "--budget: cannot read 'lots' as a size"),
        (["images", "prune"], "needs --budget SIZE"),
        (["images", "prune", "--budget", "1G", "--all"], "needs --budget SIZE"),
        (["run", "--runtime", "local", "--image-budget", "1G", "--model", "replay:x.yaml"], "--runtime docker"),
    ],
)
def test_a_bad_size_or_prune_request_is_one_line(tmp_path: Path, args: list[str], expected: str) -> None:
    assert expected in one_line_error(atlas(*args, cwd=tmp_path))


@pytest.mark.docker
def test_pull_skips_images_a_task_repo_builds_and_fails_offline_in_one_line(tmp_path: Path, own_cache: Path) -> None:
    built = atlas("images", "pull", "--instances", "atlas__tally-1", cwd=tmp_path)
    assert built.returncode == 0 and "atlas__tally-1: built from the task repo, not pulled" in built.stdout
    row = {"instance_id": "nobody__nothing-1", "repo": "nobody/nothing", "base_commit": "0" * 40}
    row |= {"problem_statement": "bug", "FAIL_TO_PASS": ["t"], "image": "localhost:1/atlas-absent:latest"}
    dataset = tmp_path / "rows.jsonl"
    dataset.write_text(json.dumps(row) + "\n")
    line = one_line_error(atlas("images", "pull", "--dataset", str(dataset), cwd=tmp_path))
    assert "localhost:1/atlas-absent:latest" in line and "could not be pulled" in line
