"""One exception type for every user-facing failure: what went wrong, and what to do about it."""

from __future__ import annotations


class LabkitError(Exception):
    """A failure the learner can fix: a message, the field or thing at fault, and the remedy.

    `field` names the config field, environment variable or resource at fault (or None);
    `fix` says what to do. Both are shown together, never as a bare traceback.
    """

    def __init__(self, message: str, *, field: str | None = None, fix: str | None = None) -> None:
        self.message = message
        self.field = field
        self.fix = fix
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"{self.field}: {self.message}" if self.field else self.message
        if self.fix:
            text += f"\n  fix: {self.fix}"
        return text

    def _repr_markdown_(self) -> str:
        """Render readably when a notebook cell returns the error instead of raising it."""
        head = f"**{self.field}**: {self.message}" if self.field else self.message
        return head + (f"\n\n*Fix:* {self.fix}" if self.fix else "")


class ConfigError(LabkitError):
    """A bad input value, caught before any AWS call."""


class SandboxError(LabkitError):
    """The embedded sandbox cannot start, stop or answer."""


class SandboxNotRunning(SandboxError):
    """The command needs the sandbox, and it is not running (every command then exits 3)."""


class BackendError(LabkitError):
    """The chosen backend (sandbox or AWS) cannot be used as asked."""
