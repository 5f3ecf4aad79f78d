"""The errors adjoint raises on purpose, all under `AdjointError`.

Each names the user's file, line and column, shows the line with a caret under
the offending column, and says what to write instead:

    model.py:7:8: UnsupportedError: `try` statements are not differentiated
        try:
        ^
    hint: move the try/except outside the differentiated function
"""
from __future__ import annotations


class AdjointError(Exception):
    """Base class of every deliberate adjoint error."""

    def __init__(self, message: str, loc=None, hint: str = ""):
        self.message, self.loc, self.hint = message, loc, hint
        super().__init__(self.render())

    def located(self, loc) -> "AdjointError":
        """This error at `loc`, when it has no location yet (raised by a runtime helper,
        then placed at the op that called it)."""
        if self.loc is None and loc is not None:
            self.loc = loc
            self.args = (self.render(),)
        return self

    def render(self) -> str:
        head = f"{type(self).__name__}: {self.message}"
        parts = []
        if self.loc is not None:
            head = f"{self.loc.filename}:{self.loc.line}:{self.loc.col + 1}: {head}"
            parts.append(head)
            if self.loc.text:
                text = self.loc.text.rstrip()
                stripped = text.lstrip()
                indent = len(text) - len(stripped)
                parts.append("    " + stripped)
                parts.append("    " + " " * max(self.loc.col - indent, 0) + "^")
        else:
            parts.append(head)
        if self.hint:
            parts.append(f"hint: {self.hint}")
        return "\n".join(parts)


class UnsupportedError(AdjointError):
    """A construct the compiler does not handle."""


class RecursionDepthError(UnsupportedError):
    """A recursive call whose depth no constant argument fixes. Called with ints, the
    API lowers the function again with them as constants (`power(x, 5)` unrolls)."""


class NonDifferentiableError(AdjointError):
    """A value that cannot be differentiated where it is used."""


class SourceError(AdjointError):
    """No source to read: builtins, C functions, lambdas typed into a REPL."""
