"""The engine's exception hierarchy: one root, specific subclasses, messages fit for a user."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Hint:
    """A next step that would get past an error, said by what to do rather than how.

    Each front end phrases it its own way (engine.cli.common.CLI_HINTS names an option or a command,
    desktop.messages.GUI_HINTS a field or a page), so the GUI never tells a user to run a command.
    """

    action: str      # 'encoding' (value: the encoding to choose) | 'add_llm' | 'train_coder'
    value: str = ""


class StatcoderError(Exception):
    """Root of every expected error. Its message is shown to users as is, then its hint, if any."""

    hint: Hint | None = None


def with_hint(exc: StatcoderError, action: str, value: str = "") -> StatcoderError:
    """The error with a hint attached (for `raise with_hint(SomeError(...), 'encoding', 'cp1252')`)."""
    exc.hint = Hint(action, value)
    return exc


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input file, located as precisely as we can."""

    file: str
    row: int | None
    problem: str
    field: str | None = None

    def __str__(self) -> str:
        where = self.file
        if self.row is not None:
            where += f", row {self.row}"
        if self.field:
            where += f", field '{self.field}'"
        return f"{where}: {self.problem}"


class ValidationError(StatcoderError):
    """An input file failed validation; nothing was written. Carries every problem found."""

    MAX_SHOWN = 20

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        shown = [str(p) for p in self.problems[: self.MAX_SHOWN]]
        more = len(self.problems) - len(shown)
        if len(self.problems) == 1:
            msg = shown[0]
        else:
            msg = f"{len(self.problems)} problems found, nothing was imported:\n  " + "\n  ".join(shown)
            if more:
                msg += f"\n  ... and {more} more"
        super().__init__(msg)


class ClassificationError(ValidationError):
    """A classification file is invalid."""


class RealDataError(ValidationError):
    """A file of real coded texts is invalid."""


class ProjectError(StatcoderError):
    """The project file cannot be opened or used."""


class SchemaTooNewError(ProjectError):
    """The project file was written by a newer statcoder than this one."""


class UnknownCodeError(StatcoderError):
    """A code that the project's classification does not contain."""

    def __init__(self, code: str):
        self.code = code
        super().__init__(f"unknown code '{code}': it is not in this project's classification")


class ModelError(StatcoderError):
    """A model file is missing, corrupt, of the wrong kind, or failed to load."""


class Cancelled(StatcoderError):
    """A long job was cancelled by the user."""

    def __init__(self, message: str = "cancelled"):
        super().__init__(message)


class TrainingError(StatcoderError):
    """Training could not run, its child process failed, or its data mix is empty."""
