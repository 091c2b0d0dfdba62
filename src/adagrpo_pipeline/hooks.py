"""Project hooks."""

from __future__ import annotations

from typing import Any

from kedro.framework.hooks import hook_impl
from kedro.pipeline import Node
from pydantic import BaseModel

from .params import validate_stage_params


class TypedParamsHook:
    """Validate every stage's parameters up front and pass nodes Pydantic models.

    A node input `params:<stage>` whose block has a model in `params.STAGE_PARAMS` receives
    that model, validated; other inputs are untouched.
    """

    def __init__(self) -> None:
        self._typed: dict[str, BaseModel] = {}

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        self._typed = validate_stage_params(context.params)

    @hook_impl
    def before_node_run(self, node: Node, inputs: dict[str, Any]) -> dict[str, Any] | None:
        typed = {
            name: self._typed[name.removeprefix("params:")]
            for name in inputs
            if name.startswith("params:") and name.removeprefix("params:") in self._typed
        }
        return typed or None
