"""One SWE-bench task, validated from whatever row shape a dataset hands us.

Rows come from task repos, JSON/JSONL/parquet files and Hugging Face datasets. They
disagree on details (test lists as JSON strings, versions as floats, nulls for empty
text), so the model normalises those here once instead of at every use site.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from atlas_agent.errors import DatasetError
from atlas_agent.fsutil import path_component
from atlas_agent.vocabulary import EVAL_END_MARKER, EVAL_START_MARKER

EvalType = Literal["pass_and_fail", "fail_only"]

# the swebench 5.x columns that grading reads; a 4.x row has none of them
HARNESS_COLUMNS = ("eval_script", "log_parser", "eval_type")


def test_command_of(eval_script: str | None) -> str | None:
    """The test command of a SWE-bench eval script: the lines between its start and end markers."""
    lines = [line.strip() for line in (eval_script or "").splitlines()]
    try:
        start = lines.index(EVAL_START_MARKER) + 1
        end = lines.index(EVAL_END_MARKER, start)
    except ValueError:
        return None
    return "\n".join(line for line in lines[start:end] if line) or None


test_command_of.__test__ = False  # type: ignore[attr-defined]  # not a test, whatever pytest thinks


class Task(BaseModel):
    """A dataset row. Unknown columns (split, datasets, image_assets, …) are kept as extras."""

    model_config = ConfigDict(extra="allow")

    instance_id: str = Field(min_length=1)
    repo: str = Field(min_length=1)
    base_commit: str = Field(min_length=1)
    problem_statement: str
    version: str = ""
    patch: str = ""
    test_patch: str = ""
    hints_text: str = ""
    created_at: str = ""
    environment_setup_commit: str = ""
    FAIL_TO_PASS: list[str]
    PASS_TO_PASS: list[str] = []
    image: str = ""
    eval_script: str | None = None
    log_parser: str | None = None
    eval_type: EvalType | None = None

    @field_validator("instance_id")
    @classmethod
    def _one_folder_name(cls, value: str) -> str:
        # the id names the instance's folder in a run directory
        return path_component(value, "instance id")

    @field_validator("version", "created_at", mode="before")
    @classmethod
    def _scalar_to_str(cls, value: Any) -> Any:
        # some datasets store version as a number (3.0) and parquet may hand back timestamps
        if value is None:
            return ""
        if isinstance(value, datetime | date):
            return value.isoformat()
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        return value

    @field_validator("patch", "test_patch", "hints_text", "environment_setup_commit", "image", mode="before")
    @classmethod
    def _null_to_empty(cls, value: Any) -> Any:
        # columnar formats write missing text as null; it means the same as ""
        return "" if value is None else value

    @field_validator("FAIL_TO_PASS", "PASS_TO_PASS", mode="before")
    @classmethod
    def _decode_test_list(cls, value: Any) -> Any:
        # the Hugging Face SWE-bench datasets carry these lists JSON-encoded as strings
        if value is None:
            return []
        if isinstance(value, str):
            try:
                return json.loads(value)
            except json.JSONDecodeError:
                raise ValueError("a string that is not a JSON-encoded list of test names") from None
        return value

    @field_validator(*HARNESS_COLUMNS, mode="before")
    @classmethod
    def _empty_to_none(cls, value: Any) -> Any:
        # an empty column is as absent as a missing one: the row cannot be graded either way
        return None if value == "" else value

    @model_validator(mode="after")
    def _derive_image(self) -> Task:
        # 4.x rows name no image; the harness derives the official one from the id
        if not self.image:
            from swebench.task.checks import expected_image  # only rows without an image need it

            self.image = expected_image(self.instance_id)
        return self

    @property
    def gradable(self) -> bool:
        """Whether the row carries what swebench 5.x grading needs."""
        return all(getattr(self, column) for column in HARNESS_COLUMNS)

    @property
    def test_command(self) -> str | None:
        """The command its eval script runs the tests with; None for rows without one."""
        return test_command_of(self.eval_script)

    @property
    def split(self) -> str | None:
        """The split a task-repo task declares, if any."""
        value = (self.model_extra or {}).get("split")
        return value if isinstance(value, str) else None

    def harness_row(self) -> dict[str, Any]:
        """The instance dict swebench's make_test_spec/run_instance expect."""
        missing = [column for column in HARNESS_COLUMNS if not getattr(self, column)]
        if {"eval_script", "log_parser"} <= set(missing):
            raise DatasetError(
                f"{self.instance_id}: this row has the SWE-bench 4.x column set (no eval_script/log_parser); "
                "grading needs a swebench 5.x dataset row"
            )
        if missing:
            raise DatasetError(
                f"{self.instance_id}: this row has no {'/'.join(missing)}; "
                "grading needs a complete swebench 5.x dataset row"
            )
        return self.model_dump()


def summarize_validation_error(err: ValidationError, limit: int = 3) -> str:
    """Pydantic's multi-line report, squeezed into one readable line."""
    missing: list[str] = []
    problems: list[str] = []
    for item in err.errors():
        field = ".".join(str(part) for part in item["loc"]) or "row"
        if item["type"] == "missing":
            missing.append(f"'{field}'")
        else:
            message = item["msg"].removeprefix("Value error, ")
            problems.append(f"field '{field}': {message[0].lower()}{message[1:]} (got {_show(item['input'])})")
    parts = []
    if missing:
        parts.append(f"missing field{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    parts.extend(problems)
    extra = len(parts) - limit
    line = "; ".join(parts[:limit])
    return f"{line} (and {extra} more)" if extra > 0 else line


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{type(value).__name__} {text[:30]}…"
