"""A model that first plays back given turns, then hands the conversation to another model.

`atlas run --from RUN/INSTANCE@STEP` opens the chosen model through `PrefixProvider`: its first turns
are the parent episode's recorded ones (their tool calls run again, for real, so the conversation
holds this container's observations), and from then on the chosen model answers that conversation.
"""

from __future__ import annotations

from atlas_agent.models.base import Model, ModelProvider, Turn
from atlas_agent.vocabulary import Message, Sampling, ToolSpec

# the finish reason of a played-back turn: no backend was asked
REPLAYED = "replayed"


class PrefixModel:
    def __init__(self, prefix: list[Turn], model: Model) -> None:
        self._prefix = prefix
        self._model = model
        self._next = 0

    @property
    def sampling(self) -> Sampling:
        return self._model.sampling

    def complete(self, messages: list[Message], tools: list[ToolSpec]) -> Turn:
        if self._next < len(self._prefix):
            self._next += 1
            return self._prefix[self._next - 1]
        return self._model.complete(messages, tools)


class PrefixProvider:
    """`provider`'s models, each opening with the `prefix` turns; a run has one instance, the branched one."""

    def __init__(self, provider: ModelProvider, prefix: list[Turn]) -> None:
        self._provider = provider
        self._prefix = prefix

    @property
    def name(self) -> str:
        return self._provider.name

    @property
    def context_window(self) -> int | None:
        return self._provider.context_window

    def for_instance(self, instance_id: str, *, variant: str = "", sampling: Sampling | None = None) -> PrefixModel:
        model = self._provider.for_instance(instance_id, variant=variant, sampling=sampling)
        return PrefixModel(self._prefix, model)

    def check(self) -> None:
        self._provider.check()
