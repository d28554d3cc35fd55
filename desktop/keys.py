"""The coding keys, in one place: the coding panel binds them, and the help and README list them from here."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtGui import QKeyEvent, QKeySequence

# Bindings (Qt key-sequence strings). The panel's text field keeps the focus while coding, so every
# key but Enter carries a modifier: plain letters are typing.
ACCEPT = "Return"
PICK = "Ctrl+K"
SKIP = "Ctrl+S"
UNCODABLE = "Ctrl+U"
UNDO = "Ctrl+Z"
HISTORY = "Ctrl+H"
SECOND_OPINION = "Ctrl+J"
AUTO_OPINION = "Ctrl+Shift+J"
# In the recent decisions list:
HISTORY_EDIT = "Return"
HISTORY_UNDO = "Delete"
HISTORY_LEAVE = "Esc"


@dataclass(frozen=True)
class KeyHelp:
    keys: str      # as a user reads it
    action: str


CODING_KEYS: tuple[KeyHelp, ...] = (
    KeyHelp("↑ / ↓", "choose among the top 5 suggestions (the notes of the highlighted code are shown beside them)"),
    KeyHelp("Enter", "accept the highlighted code; the text becomes a training text"),
    KeyHelp("Alt+1 … Alt+5", "accept that row"),
    KeyHelp("Ctrl+K", "pick any other code (type to search codes, titles and notes)"),
    KeyHelp("Ctrl+S", "skip: nothing is stored; in a batch review queue the row stays in the queue for later"),
    KeyHelp("Ctrl+U", "cannot be coded: stored as such, never as a training text"),
    KeyHelp("Ctrl+J", "second opinion: the local LLM reads the top 5 with their notes (seconds on a CPU); the code "
                      "it prefers is marked ★ in the Judge column"),
    KeyHelp("Ctrl+Shift+J", "second opinions by themselves, on or off (off at first; remembered): when on, the local "
                            "LLM reads the top 5 whenever the coder is unsure (its first code below the judge's "
                            "threshold) and you pause, while no other job runs"),
    KeyHelp("Ctrl+Z, or Backspace in an empty field", "undo the last decision, and its training text"),
    KeyHelp("Ctrl+H", "go to the recent decisions: ↑/↓ move, Enter changes the code, Ctrl+U marks the text "
                      "as one that cannot be coded, Delete undoes it, Esc goes back to typing"),
)


def matches(event: QKeyEvent, binding: str) -> bool:
    """Whether a key press is the binding (modifiers included, so Ctrl+Z is not Ctrl+Shift+Z)."""
    pressed = QKeySequence(event.keyCombination())
    return pressed.matches(QKeySequence(binding)) == QKeySequence.SequenceMatch.ExactMatch


def keys_markdown() -> str:
    """The table of coding keys, for the README and the help page."""
    rows = ["| Key | Action |", "| --- | --- |"]
    rows += [f"| {k.keys} | {k.action} |" for k in CODING_KEYS]
    return "\n".join(rows)
