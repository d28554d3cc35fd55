"""What an operation changed in a project, so a front end refreshes only what depends on it.

Anki's `OpChanges` pattern: an engine operation that mutates the project says what it changed (a
`Changes` record, usually on its result as `.changes`), and the desktop emits one refresh signal with
it; each page decides from the flags whether it must reload. No page has to remember which string to
announce, and a new kind of change is one new field here.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

NAMES = ("classification", "realdata", "llm", "runs", "samples", "curation", "models", "evaluations",
         "corrections")


@dataclass(frozen=True)
class Changes:
    """Which parts of a project an operation changed. Everything False: nothing to refresh."""

    classification: bool = False   # codes, titles, notes, links (and the code search index)
    realdata: bool = False         # real coded texts (train/test), their augmentations, uncoded texts and their labels
    llm: bool = False              # the generation models and backend settings
    runs: bool = False             # generation runs (definitions and their status)
    samples: bool = False          # synthetic samples: added, edited, accepted or rejected
    curation: bool = False         # curation flags and the curations that set them
    models: bool = False           # trained coders and the one used for coding
    evaluations: bool = False      # stored evaluations of coders
    corrections: bool = False      # coding decisions

    def __or__(self, other: "Changes") -> "Changes":
        return Changes(**{f.name: getattr(self, f.name) or getattr(other, f.name) for f in fields(self)})

    def __bool__(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self))

    def names(self) -> list[str]:
        """The names of the changed parts, in workflow order."""
        return [f.name for f in fields(self) if getattr(self, f.name)]

    def touches(self, *names: str) -> bool:
        """Whether any of these parts changed (a page asks about what it shows)."""
        unknown = set(names) - set(NAMES)
        if unknown:
            raise ValueError(f"unknown part(s) of a project: {', '.join(sorted(unknown))}")
        return any(getattr(self, name) for name in names)

    @classmethod
    def of(cls, *names: str) -> "Changes":
        """Changes(samples=True) spelled Changes.of('samples'); unknown names are an error."""
        unknown = set(names) - set(NAMES)
        if unknown:
            raise ValueError(f"unknown part(s) of a project: {', '.join(sorted(unknown))}")
        return replace(cls(), **dict.fromkeys(names, True))

    @classmethod
    def everything(cls) -> "Changes":
        """A project opened, closed or replaced: every view reloads."""
        return cls.of(*NAMES)


NOTHING = Changes()


def changes_of(result: object) -> Changes | None:
    """The Changes an operation's result carries (its `changes` attribute), or None if it says nothing."""
    changes = getattr(result, "changes", None)
    return changes if isinstance(changes, Changes) else None
