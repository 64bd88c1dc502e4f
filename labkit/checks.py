"""The two checks every validator shares: a value must be text, and a near miss gets a suggestion.

Standard library and `labkit.errors` only, so the config (`labkit.config`) and the AWS layer's region facts
(`labkit.aws.regions`) can both use them without importing each other.
"""

from __future__ import annotations

import difflib
from typing import Any

from labkit.errors import ConfigError


def require_str(field: str, value: Any, example: str) -> str:
    """The value stripped, or a ConfigError naming `field` when it is not text."""
    if not isinstance(value, str):
        raise ConfigError(f"must be text, got {value!r}", field=field, fix=f'write it as a string, e.g. "{example}"')
    return value.strip()


def suggest(value: str, choices: frozenset[str] | tuple[str, ...]) -> str:
    """ " (did you mean ...?)" with up to three close choices, or "" when none is close."""
    close = difflib.get_close_matches(value, sorted(choices), n=3)
    return f" (did you mean {', '.join(close)}?)" if close else ""
