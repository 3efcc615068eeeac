"""A tiny model that calls tools: SmolLM2-135M-Instruct fine-tuned on Atlas trajectories.

    python bench/tiny_agent.py data OUT.jsonl                 # CPU: trajectories -> training examples
    python bench/tiny_agent.py tune GGUF OUT.jsonl MODEL_DIR  # GPU: fine-tune into an HF directory

The bundled SmolLM2-135M answers an agent prompt with prose, never with a tool call, so it cannot
show that a served model drives the agent. This makes one that can, from what Atlas has offline.
`data` runs scripted conversations (explore, read, edit, test, submit) through
`atlas run --runtime local` on the tally and semverkit tasks of atlas-mini, so every observation is
real, and renders each step exactly as a served model would see it: the model's chat template, the
Qwen2.5 tool block, the bash-only scaffold. The textkit tasks stay out of the data, so a run on them
uses a repository the model never saw. `tune` dequantizes the GGUF with transformers, trains on the
replies only, and writes FP16 safetensors for `atlas models prepare MODEL_DIR OUT --bpw 6.0`.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # runnable from a checkout

from atlas_agent.models.chat_template import chat_turns, render_prompt
from atlas_agent.tasks import MINI_SUITE_DIR, Task, load_tasks
from atlas_agent.tools import build_tools
from atlas_agent.vocabulary import Message, ToolCall

TRAIN_REPOS = ("atlas/tally", "atlas/semverkit")
DEMO_SCRIPT = Path(__file__).resolve().parent.parent / "atlas_agent" / "models" / "replays" / "atlas-mini-demo.yaml"
ATLAS = str(Path(sys.executable).parent / "atlas")


def keyword(task: Task) -> tuple[str, str]:
    """The first code name the issue mentions that the repository defines, and its file."""
    names = re.findall(r"`([A-Za-z_][\w.]*)(?:\(\))?`", task.problem_statement)
    names += re.findall(r"\b([A-Za-z_]\w*)\(", task.problem_statement)
    for name in (n.split(".")[-1] for n in names):
        if where := defining_file(task, name):
            return name, where
    return "def", "README.md"


def defining_file(task: Task, name: str) -> str | None:
    source = MINI_SUITE_DIR / "repos" / task.repo.split("/")[-1]
    for path in sorted(source.rglob("*.py")):
        if re.search(rf"^\s*(def|class) {re.escape(name)}\b", path.read_text(), re.M):
            return str(path.relative_to(source))
    return None


def replace_script(patch: str) -> str:
    """The fix as a Python heredoc that swaps each hunk's old lines for its new ones."""
    lines = ["python - <<'PY'", "import pathlib"]
    for file_diff in re.split(r"(?m)^diff --git ", patch)[1:]:
        path = re.search(r"(?m)^\+\+\+ b/(\S+)", file_diff)
        if path is None:
            continue
        lines += [f"path = pathlib.Path({path.group(1)!r})", "text = path.read_text()"]
        for hunk in re.split(r"(?m)^@@[^\n]*\n", file_diff)[1:]:
            body = [line for line in hunk.splitlines(keepends=True) if line[:1] in (" ", "-", "+")]
            old = "".join(line[1:] for line in body if line[0] in " -")
            new = "".join(line[1:] for line in body if line[0] in " +")
            lines.append(f"text = text.replace({old!r}, {new!r}, 1)")
        lines.append("path.write_text(text)")
    return "\n".join([*lines, "PY"])


def scripts(task: Task) -> list[list[dict[str, str] | str]]:
    """Three ways to look into an issue before submitting, all of them ordinary first moves, and one
    that goes on to fix it (the task's reference fix, written as a text replacement)."""
    name, where = keyword(task)
    tests = f"tests/test_{Path(where).stem}.py"
    return [
        [
            {"thought": "Look at the layout of the repository first.", "bash": "ls"},
            {"thought": f"Find where {name} is defined.", "bash": f'grep -rn "def {name}" --include=*.py .'},
            {"thought": "Read the code around it.", "bash": f"sed -n '1,60p' {where}"},
            {"thought": "Run the tests.", "bash": "python -m pytest -q -p no:cacheprovider 2>&1 | tail -3"},
            "submit",
        ],
        [
            {"thought": "List the tracked files.", "bash": "git ls-files"},
            {"thought": f"Search for {name}.", "bash": f"grep -rn {name} --include=*.py . | head -20"},
            {"thought": "Run the tests of that module.", "bash": f"python -m pytest -q {tests} 2>&1 | tail -5"},
            "submit",
        ],
        [
            {"thought": "Read the README.", "bash": "head -30 README.md"},
            {"thought": f"Show {name}.", "bash": f'grep -n "def {name}" -A 20 {where}'},
            {
                "thought": "Check the state of the checkout.",
                "bash": "git status --short && git log --oneline | head -3",
            },
            "submit",
        ],
        [
            {"thought": f"Find where {name} is defined.", "bash": f'grep -rn "def {name}" --include=*.py .'},
            {"thought": "Read the code.", "bash": f"sed -n '1,80p' {where}"},
            {"thought": "Change the code so it does what the issue asks.", "bash": replace_script(task.patch)},
            {"thought": "Look at the change.", "bash": "git diff"},
            {"thought": "Run the tests.", "bash": "python -m pytest -q -p no:cacheprovider 2>&1 | tail -3"},
            "submit",
        ],
    ]


def run_scripts(tasks: list[Task], workdir: Path) -> list[Path]:
    """Each script variant as one `atlas run --runtime local`; the trajectories it wrote."""
    demo = yaml.safe_load(DEMO_SCRIPT.read_text())["instances"]
    variants: list[dict[str, Any]] = [{t.instance_id: scripts(t)[i] for t in tasks} for i in range(4)]
    variants.append({key: steps for key, steps in demo.items() if key in {t.instance_id for t in tasks}})
    trajectories = []
    for number, instances in enumerate(variants):
        script = workdir / f"script-{number}.yaml"
        script.write_text(yaml.safe_dump({"instances": instances}, sort_keys=False, allow_unicode=True))
        run_id = f"tiny-agent-{number}"
        command = [ATLAS, "run", "--runtime", "local", "--scaffold", "bash-only", "--model", f"replay:{script}"]
        command += ["--run-id", run_id, "--instances", ",".join(instances), "--runs-dir", str(workdir)]
        subprocess.run(command, check=True)
        trajectories += sorted((workdir / run_id / "instances").glob("*/trajectory.json"))
    return trajectories


def examples(trajectory: dict[str, Any], template: str, bos: str, eos: str) -> list[dict[str, str]]:
    """One (prompt, reply) pair per step, rendered as the server renders a conversation."""
    specs = [tool.spec() for tool in build_tools(["bash", "submit"])]
    messages = [
        Message(role="system", content=trajectory["system_prompt"]),
        Message(role="user", content=trajectory["instance_prompt"]),
    ]
    pairs = []
    for step in trajectory["steps"]:
        calls = [ToolCall(id=c["id"], name=c["name"], arguments=c["arguments"]) for c in step["tool_calls"]]
        reply = Message(role="assistant", content=step["thought"], tool_calls=calls)
        prompt = render_prompt(template, chat_turns(messages, specs), bos_token=bos, eos_token=eos)
        full = render_prompt(
            template, chat_turns([*messages, reply], specs), bos_token=bos, eos_token=eos, add_generation_prompt=False
        )
        if not full.startswith(prompt):
            raise SystemExit("the chat template does not render a reply as a continuation of its prompt")
        pairs.append({"prompt": prompt, "reply": full[len(prompt) :]})
        messages.append(reply)
        for result in step["results"]:
            output = result["observation"]["output"]
            messages.append(Message(role="tool", content=output, tool_call_id=result["tool_call_id"]))
    return pairs


def make_data(out: Path) -> None:
    from atlas_agent.modelfiles.bundled import bundled_gguf
    from atlas_agent.models.gguf import load_engine

    loaded = load_engine(bundled_gguf("smollm2"))
    tasks = [task for task in load_tasks("atlas-mini") if task.repo in TRAIN_REPOS]
    with tempfile.TemporaryDirectory(prefix="tiny-agent-") as tmp:
        rows = []
        for path in run_scripts(tasks, Path(tmp)):
            rows += examples(json.loads(path.read_text()), loaded.template, loaded.bos_token, loaded.eos_token)
    out.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    print(f"{len(rows)} examples from {len(tasks)} tasks -> {out}")


def tune(gguf: Path, data: Path, out: Path, epochs: int, lr: float, limit: int | None) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from atlas_agent.modelfiles.convert import exllama_config, gguf_to_hf

    device = "cuda" if torch.cuda.is_available() else "cpu"  # the CPU only for a smoke test
    base = gguf_to_hf(gguf, out.with_name(out.name + ".base"))
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32).to(device)
    rows = [json.loads(line) for line in data.read_text().splitlines()][:limit]
    samples = []
    for row in rows:
        prompt = tokenizer(row["prompt"], add_special_tokens=False)["input_ids"]
        reply = tokenizer(row["reply"], add_special_tokens=False)["input_ids"]
        samples.append((torch.tensor([prompt + reply]), torch.tensor([[-100] * len(prompt) + reply])))
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    rng = random.Random(0)
    for epoch in range(epochs):
        rng.shuffle(samples)
        total = 0.0
        for ids, labels in samples:
            with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
                loss = model(input_ids=ids.to(device), labels=labels.to(device)).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad()
            total += loss.item()
        print(f"epoch {epoch + 1}: mean loss {total / len(samples):.4f} over {len(samples)} replies", flush=True)
    model.half().save_pretrained(out, safe_serialization=True)
    config = exllama_config(model.config.to_dict(), type(model).__name__)
    (out / "config.json").write_text(json.dumps(config, indent=2, default=str), encoding="utf-8")
    tokenizer.save_pretrained(out)
    print(f"tuned model -> {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    data = commands.add_parser("data", help="write training examples (CPU)")
    data.add_argument("out", type=Path)
    tuning = commands.add_parser("tune", help="fine-tune on the examples (GPU)")
    tuning.add_argument("gguf", type=Path)
    tuning.add_argument("data", type=Path)
    tuning.add_argument("out", type=Path)
    tuning.add_argument("--epochs", type=int, default=4)
    tuning.add_argument("--lr", type=float, default=5e-5)
    tuning.add_argument("--limit", type=int, help="train on the first N examples only (a smoke test)")
    args = parser.parse_args()
    if args.command == "data":
        make_data(args.out)
    else:
        tune(args.gguf, args.data, args.out, args.epochs, args.lr, args.limit)


if __name__ == "__main__":
    main()
