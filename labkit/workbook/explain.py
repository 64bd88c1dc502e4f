"""The few sentences of a notebook that depend on the lab's engine, rendered from its description.

One notebook serves Aurora MySQL and Aurora PostgreSQL: where a lesson names an engine's own words (how a server
says which instance it is, the code of a read-only refusal, the command-line client, what the sandbox runs), the
notebook has a one-line cell, `labkit.explain("identity", config)`, instead of a sentence written for one engine.
The sentences live in each engine's description (labkit.engines: its `notes`), with every other fact about it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from labkit.engines import ENGINES, engine_of
from labkit.errors import ConfigError


@dataclass(frozen=True)
class EngineNote:
    """One engine-specific passage: markdown in a notebook, text in a terminal."""

    engine: str
    topic: str
    text: str

    def _repr_markdown_(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return self.text


def topics() -> tuple[str, ...]:
    """The topics every engine's description explains."""
    shared = set.intersection(*(set(engine.notes) for engine in ENGINES.values()))
    return tuple(sorted(shared))


def explain(topic: str, config: Any | None = None) -> EngineNote:
    """The passage on `topic` for the lab's engine (the saved config's unless one is given)."""
    if config is None:
        from labkit.config import LabConfig  # the saved lab.toml

        config = LabConfig.load()
    engine = engine_of(config)
    if topic not in engine.notes:
        raise ConfigError(
            f"there is no passage on {topic!r} for {engine.display_name}",
            field="topic",
            fix=f"use one of {', '.join(topics())}",
        )
    return EngineNote(engine.name, topic, engine.notes[topic])
