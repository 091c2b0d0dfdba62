"""The base of every typed parameter model (`params:<stage>`): an unknown key is an error, so a
misspelt setting in conf/ or `--params` stops the run instead of being silently ignored."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")
