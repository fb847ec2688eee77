"""The one error type users see: a cause and the fix, rendered by the CLI as one clear message."""
from __future__ import annotations


class FormicaryError(Exception):
    """A failure caused by input or environment, with what to do about it.

    `cause` says what is wrong, `fix` says what the user should do. `details` carries machine-readable
    context (for --json) and `partial` any results collected before the failure, so they are never lost.
    """

    def __init__(self, cause: str, fix: str | None = None, *, details: dict | None = None,
                 partial: dict | None = None) -> None:
        super().__init__(cause)
        self.cause = cause
        self.fix = fix
        self.details = details or {}
        self.partial = partial

    def to_dict(self) -> dict:
        out: dict = {"cause": self.cause, "fix": self.fix}
        if self.details:
            out["details"] = self.details
        if self.partial is not None:
            out["partial"] = self.partial
        return out

    def __str__(self) -> str:
        return self.cause if not self.fix else f"{self.cause}\n  fix: {self.fix}"
