"""Branching an episode at a step: the parent's first steps played back as model turns (the loop runs
their tool calls again), and afterwards, how the observations this time compare with the recorded ones."""

from __future__ import annotations

from dataclasses import dataclass

from atlas_agent.errors import AtlasError
from atlas_agent.models.base import ModelProvider, Turn
from atlas_agent.models.prefix import REPLAYED, PrefixProvider
from atlas_agent.trajectory import BranchPoint, BranchRecord, Step, Trajectory

# characters of each side of the first difference shown
SHOWN_CHARS = 80


@dataclass(frozen=True)
class BranchReplay:
    point: BranchPoint
    recorded: list[Step]  # the parent's steps 1..point.step

    def __post_init__(self) -> None:
        for number, step in enumerate(self.recorded, start=1):
            cut = [where for where in step.reply_chars if where.startswith("tool_calls")]
            if cut:
                raise AtlasError(
                    f"--from {self.point}: step {number}'s tool call was stored cut short ({cut[0]}), so it "
                    "cannot be run again: branch at an earlier step"
                )

    def check_tools(self, offered: list[str], scaffold: str) -> None:
        """Every tool the replayed steps call must be one the chosen scaffold offers."""
        for number, step in enumerate(self.recorded, start=1):
            for call in step.tool_calls:
                if call.name not in offered:
                    raise AtlasError(
                        f"--from {self.point}: step {number} calls `{call.name}`, which scaffold {scaffold} does "
                        "not offer: choose a scaffold with that tool (-s tools) or branch at an earlier step"
                    )

    def provider_over(self, provider: ModelProvider) -> PrefixProvider:
        """`provider`'s models, opening with the recorded steps' turns."""
        return PrefixProvider(provider, [replayed_turn(step) for step in self.recorded])

    def record(self, trajectory: Trajectory) -> BranchRecord:
        """The parent, how many steps of `trajectory` were replayed, and where their observations differ."""
        replayed = trajectory.steps[: len(self.recorded)]
        differences = [
            difference
            for number, (was, now) in enumerate(zip(self.recorded, replayed, strict=False), start=1)
            if (difference := first_difference(number, was, now)) is not None
        ]
        return BranchRecord(
            parent=self.point,
            replayed_steps=len(replayed),
            diverged_steps=len(differences),
            first_divergence=differences[0] if differences else None,
        )


def replayed_turn(step: Step) -> Turn:
    """The recorded reply, as the model gave it; a reply without a tool call keeps the error it got."""
    error = step.error if not step.tool_calls else None
    return Turn(text=step.thought, tool_calls=step.tool_calls, stop_reason=REPLAYED, format_error=error)


def first_difference(number: int, recorded: Step, replayed: Step) -> str | None:
    """Where step `number`'s observations this time first differ from the recorded ones, in one line."""
    pairs = zip(recorded.results, replayed.results, strict=False)
    for index, (was, now) in enumerate(pairs, start=1):
        if was.observation.output != now.observation.output:
            line_was, line_now = first_differing_lines(was.observation.output, now.observation.output)
            return f"step {number}, call {index} ({was.tool}): recorded {line_was!r}, now {line_now!r}"
    if len(recorded.results) != len(replayed.results):
        return f"step {number}: {len(recorded.results)} tool result(s) recorded, {len(replayed.results)} now"
    return None


def first_differing_lines(was: str, now: str) -> tuple[str, str]:
    lines_was, lines_now = was.splitlines(), now.splitlines()
    for line_was, line_now in zip(lines_was, lines_now, strict=False):
        if line_was != line_now:
            return clipped(line_was), clipped(line_now)
    # one is the other with lines more (or fewer)
    shorter = min(len(lines_was), len(lines_now))
    return clipped("\n".join(lines_was[shorter:])), clipped("\n".join(lines_now[shorter:]))


def clipped(text: str) -> str:
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 3] + "..."
