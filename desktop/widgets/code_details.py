"""One code shown in full: path, notes, includes, excludes with clickable links, what other codes' excludes
send here, siblings and counts."""

from __future__ import annotations

from html import escape

from PySide6.QtCore import QUrl, Signal
from PySide6.QtWidgets import QTextBrowser, QWidget

from engine.classification import ancestors, get_code, level_names, links_from, links_to, siblings
from engine.errors import StatcoderError
from engine.store.counts import code_counts
from engine.store.project import Project


def code_link(code: str, label: str | None = None) -> str:
    return f'<a href="code:{escape(code)}">{escape(label or code)}</a>'


def paragraphs(text: str) -> str:
    return "".join(f"<p style='margin:2px 0'>{escape(line)}</p>" for line in text.splitlines() if line.strip())


def by_text(pairs) -> dict[str, list[str]]:
    """(text, code) pairs grouped by text, in first-seen order: one item that names several codes is one line."""
    grouped: dict[str, list[str]] = {}
    for text, code in pairs:
        grouped.setdefault(text, []).append(code)
    return grouped


class CodeDetails(QTextBrowser):
    """Emits code_clicked when a link to another code (path, excludes target, sibling) is clicked."""

    code_clicked = Signal(str)

    def __init__(self, parent: QWidget | None = None, *, compact: bool = False) -> None:
        super().__init__(parent)
        self.compact = compact
        self.setOpenLinks(False)
        self.anchorClicked.connect(self._anchor)
        self.code: str | None = None

    def _anchor(self, url: QUrl) -> None:
        text = url.toString()
        if text.startswith("code:"):
            self.code_clicked.emit(text[len("code:"):])

    def show_code(self, project: Project | None, code: str | None) -> None:
        self.code = code
        if project is None or code is None:
            self.setHtml("<p style='color:gray'>Select a code to see its notes.</p>")
            return
        try:
            self.setHtml(self.render(project, code))
        except StatcoderError as exc:
            self.setHtml(f"<p style='color:#a00'>{escape(str(exc))}</p>")

    def render(self, project: Project, code: str) -> str:
        item = get_code(project, code)
        names = level_names(project)
        level = names[item.level - 1] if 0 < item.level <= len(names) else f"level {item.level}"
        path = " › ".join(code_link(a.code, f"{a.code} {a.title}") for a in ancestors(project, code))
        html = [f"<h3 style='margin:0'>{escape(item.code)} &nbsp;{escape(item.title)}</h3>",
                f"<p style='color:gray; margin:2px 0'>{escape(level)}{' · ' + path if path else ''}</p>"]
        if not self.compact:
            counts = code_counts(project, code)
            html.append(
                "<p style='margin:6px 0'><b>Texts</b>: "
                f"{counts.real_train:,} real (train) · {counts.real_test:,} real (test) · "
                f"{counts.synthetic:,} synthetic · {counts.accepted:,} accepted · "
                f"{counts.corrections:,} coding decisions</p>")
        for title, text in (("Includes", item.includes), ("Also includes", item.also_includes),
                            ("Notes", item.notes)):
            if text.strip():
                html.append(f"<h4 style='margin:8px 0 2px 0'>{title}</h4>{paragraphs(text)}")
        links = links_from(project, code)
        if item.excludes.strip() or links:
            html.append(f"<h4 style='margin:8px 0 2px 0'>Excludes</h4>{paragraphs(item.excludes)}")
            if links:
                html.append("<p style='margin:4px 0 0 0'><i>Classified elsewhere:</i></p><ul style='margin:0'>"
                            + "".join(f"<li>{escape(text)} → {', '.join(map(code_link, codes))}</li>"
                                      for text, codes in by_text((l.text, l.target) for l in links).items())
                            + "</ul>")
        incoming = links_to(project, code)
        if incoming:
            # The activities other codes exclude and send here: where this code's boundary runs, and the
            # lines its coders train on beside its own notes (DataMix.redirected_notes).
            html.append("<h4 style='margin:8px 0 2px 0'>Sent here by other codes' excludes</h4><ul style='margin:0'>"
                        + "".join(f"<li>{escape(text)} ← {', '.join(map(code_link, codes))}</li>"
                                  for text, codes in by_text((l.text, l.code) for l in incoming).items())
                        + "</ul>")
        if not self.compact:
            sibs = siblings(project, code)
            if sibs:
                html.append("<h4 style='margin:8px 0 2px 0'>Siblings</h4><ul style='margin:0'>" + "".join(
                    f"<li>{code_link(s.code)} {escape(s.title)}</li>" for s in sibs) + "</ul>")
        return "".join(html)
