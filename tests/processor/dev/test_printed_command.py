"""The payload in dev mode's printed command is one the task accepts, made up from the
payload model's field types; when none can be made up, the banner says what to fill in."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Literal

from kube_taskqueue import Provider
from kube_taskqueue.assignment import assign
from kube_taskqueue.cli.dev import DEV_CREDENTIALS, enqueue_command, example_payload
from kube_taskqueue.config import ProcessorConfig
from pydantic import BaseModel, Field


class Inner(BaseModel):
    name: str


class Everything(BaseModel):
    text: str
    count: int
    ratio: float
    flag: bool
    items: list[int]
    mapping: dict[str, str]
    mode: Literal["fast", "slow"]
    maybe: int | None
    inner: Inner
    given: str = "default"  # not required: left out


class Constrained(BaseModel):
    code: str = Field(pattern=r"^[A-Z]{3}$")


def test_a_made_up_payload_validates_and_holds_only_required_fields():
    payload = example_payload(Everything)
    assert payload is not None
    Everything.model_validate(payload)
    assert "given" not in payload
    assert payload["mode"] == "fast" and payload["inner"] == {"name": "value"}


def test_a_model_whose_constraints_defeat_the_guess_gets_none():
    assert example_payload(Constrained) is None


def test_the_command_falls_back_to_the_fields_to_fill_in_with_a_note(tmp_path: Path):
    provider = Provider()

    @provider.task("strict:job", queue="work", payload_model=Constrained)
    def strict(payload: Constrained) -> None: ...

    config = ProcessorConfig.model_validate({"app": "x:provider"})
    line, note = enqueue_command(
        config=config,
        provider=provider,
        assignment=assign(provider, processor="main", tasks=None),
        effective=tmp_path / "effective.yaml",
        import_path=None,
    )
    words = shlex.split(line)
    assert words[: len(DEV_CREDENTIALS)] == [f"{k}={v}" for k, v in DEV_CREDENTIALS.items()]
    assert Path(words[len(DEV_CREDENTIALS)]).is_absolute()
    assert words[-1] == '{"code": "..."}'
    assert note == "fill in the payload: the fields of Constrained, the payload model of strict:job"
