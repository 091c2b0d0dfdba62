"""Typed parameters: every stage's `params:<stage>` block has a Pydantic model here.

`hooks.TypedParamsHook` validates every registered block when the Kedro context is created
(so a bad value fails before any node runs) and hands nodes the validated model instead of
the raw dict.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from .recdata.config import IngestParams

STAGE_PARAMS: dict[str, type[BaseModel]] = {
    "ingest": IngestParams,
}


class ParameterError(ValueError):
    pass


def validate_stage_params(params: dict[str, Any]) -> dict[str, BaseModel]:
    """Validate each registered stage block present in `params`; raise one error naming every
    bad field as `params:<stage>.<field>`."""
    typed, problems = {}, []
    for stage, model in STAGE_PARAMS.items():
        if stage not in params:
            continue
        try:
            typed[stage] = model.model_validate(params[stage])
        except ValidationError as err:
            for e in err.errors():
                where = ".".join(str(x) for x in (stage, *e["loc"]))
                problems.append(f"params:{where}: {e['msg']} (got {e.get('input')!r})")
    if problems:
        raise ParameterError("invalid parameters:\n  " + "\n  ".join(problems))
    return typed
