"""The suite's exceptions: one type for bad input (exit 2), carrying a message for the user."""
from __future__ import annotations

__all__ = ["InputError", "DataError", "PublishError"]


class InputError(Exception):
    """Invalid input or arguments: the run stops with this message and exit code 2."""


class DataError(InputError):
    """Input tables break the data contract; ``problems`` lists every finding of one pass."""

    def __init__(self, problems: list, source: str = ""):
        self.problems = list(problems)
        self.source = source
        head = f"Invalid input data{f' in {source}' if source else ''}: {len(self.problems)} problem(s)"
        super().__init__("\n".join([head, *(p.render() for p in self.problems)]))

    def __reduce__(self):  # rebuilt from its findings when it crosses a process boundary
        return (type(self), (self.problems, self.source))


class PublishError(Exception):
    """The run could not write or publish its reports (a full disk, a read-only file system):
    nothing was published, OUT holds the previous run unchanged; exit code 1."""
