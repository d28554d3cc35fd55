"""Offline help: F1 opens a paragraph on the current page, the terms it uses, and the keys that work there.

Everything is in this file (no network, no browser): one paragraph per page, one per term (n.e.c., ECE,
macro-F1, auto-coding, top-5, excludes…), and the keyboard tables. The coding keys are the Code page's
own table in desktop/keys.py when it is there; `coding_keys()` is the one hook that reads it.
"""

from __future__ import annotations

from html import escape

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QTextBrowser, QVBoxLayout, QWidget

PAGES: dict[str, tuple[str, str]] = {
    "project": ("Project", "A project is one file (.statcoder) that holds everything: the classification, the real "
                "and synthetic texts, the trained coders and every coding decision. Copy the file to move or back "
                "up a project. The checklist shows where the project stands in the workflow, from the "
                "classification to evaluation, with the numbers of each step; the button under it opens the page "
                "of the next step."),
    "classification": ("Classification", "Import the classification you code into (a built-in one such as NACE "
                       "Rev. 2, or your own CSV or JSON file), then browse it: the tree, a search over codes, "
                       "titles and notes (word forms and small typos are found too), and each code's notes with "
                       "the links of its excludes. Real coded texts, if you have them, are imported here as well: "
                       "half of them are kept aside to test the coder."),
    "models": ("LLMs", "Add the local language model (a GGUF file) that writes the synthetic training texts, or "
               "point to a server. The page shows the file's details and the memory it needs at the chosen "
               "context size; Test measures how fast it runs on this computer."),
    "generate": ("Generate", "The language model writes short descriptions for each code, as respondents would "
                 "write them, with several strategies (from the notes, keywords, contrasts with the excludes, a "
                 "grid of conditions). Every sample is stored as it arrives. Pause stops within the current "
                 "request; Resume continues exactly where the run stopped."),
    "review": ("Review", "Check the generated samples. Run curation first: it flags junk, duplicates and samples "
               "that belong to another code, with a reason, rejects or relabels them, and never deletes "
               "anything. Then accept or reject samples yourself with the keys below; your decisions are never "
               "overridden by a rule."),
    "train": ("Train & evaluate", "Train a coder on a mix of the notes, the accepted synthetic samples and the real "
              "training texts, then compare coders on the same real test texts: top-1, top-5, macro-F1, "
              "calibration (ECE) and the auto-coding curve. Choose the coder the Code page uses."),
    "code": ("Code", "Type a description and the coder suggests the five most likely codes with their "
             "probabilities; the notes of the highlighted code are shown beside them. Accept with Enter, or pick "
             "another code. Each decision is stored and becomes training data for the next coder. The Batch tab "
             "codes a whole CSV file and queues the uncertain rows for review. The Uncoded tab labels texts nobody "
             "has coded (optionally with the local LLM's second opinion): the confident labels train the next "
             "coder as “pseudo”, the least confident wait for you one at a time."),
}

# Which terms each page uses (shown under the page's paragraph; every term is in the full glossary).
PAGE_TERMS: dict[str, list[str]] = {
    "project": ["coder", "synthetic sample", "curation"],
    "classification": ["leaf code", "excludes", "n.e.c.", "real texts"],
    "models": ["GGUF", "context size"],
    "generate": ["synthetic sample", "strategy", "quota", "n.e.c."],
    "review": ["curation", "flag", "label check", "relabel", "near-duplicate"],
    "train": ["top-1", "top-5", "macro-F1", "ECE", "auto-coding", "validation"],
    "code": ["top-5", "auto-coding", "confidence", "n.e.c.", "excludes"],
}

GLOSSARY: dict[str, str] = {
    "n.e.c.": "“Not elsewhere classified”: a catch-all code for the activities of a group that no other code of "
              "the group covers (e.g. 10.89 “Manufacture of other food products n.e.c.”). Choose it only when "
              "no specific code fits; its notes list what it takes.",
    "excludes": "The part of a code's notes that names activities the code does not cover and says where they "
                "are coded instead (“growing of rice, see 01.12”). statcoder turns them into links between "
                "codes, uses them to write contrasting samples and to relabel samples that belong elsewhere.",
    "leaf code": "A code with no codes under it: the most detailed level, the one texts are coded to.",
    "real texts": "Texts already coded by people. Half are kept aside as the test set and are never used for "
                  "training, so the evaluation says how the coder will do on new texts.",
    "synthetic sample": "A description written by the language model for one code. Samples are training data "
                        "only after curation and review have accepted them.",
    "strategy": "How a request asks the model for samples: from the notes, from keywords, in contrast with the "
                "excludes, as an n.e.c. case, or under a grid of conditions (writer, length, register).",
    "quota": "How many accepted samples each code should get in a run.",
    "curation": "Rules that judge every sample and store a flag with a reason: empty or repeated text, "
                "duplicates, copies of the notes, conflicts with the excludes, and a label check. A flag "
                "rejects the sample, or relabels it to the code the rule suggests. Nothing is deleted, and your "
                "own decisions always win.",
    "flag": "A reason curation gave for doubting a sample (e.g. “'bakery' 3 times in a row”). Overriding a flag "
            "takes it back.",
    "label check": "A classifier trained without a sample predicts its code; a sample whose own code is not "
                   "among the top few is flagged and relabelled to the predicted code.",
    "relabel": "Give a sample another code than the one it was generated for, because it describes that other "
               "code's activity. The original code is kept for reference.",
    "near-duplicate": "Two samples whose texts are almost the same (a similarity ratio above the threshold, 0-100).",
    "coder": "A trained classifier (fastText, sentence embeddings, word matching over each code's notes and "
             "texts, or an ensemble of them) that ranks codes for a text.",
    "top-1": "The share of test texts whose right code is the coder's first suggestion.",
    "top-5": "The share of test texts whose right code is among the coder's five suggestions: what a coder who "
             "picks from the list can reach with one keystroke.",
    "macro-F1": "The F1 score (the balance of precision and recall) computed for each code and then averaged, "
                "every code counting the same: it shows whether rare codes are coded well, which top-1 hides "
                "when a few frequent codes dominate.",
    "ECE": "Expected calibration error: how far the coder's probabilities are from how often it is right. "
           "0.02 means that suggestions shown at 80 % are right about 78-82 % of the time. Low ECE is what "
           "makes an auto-coding threshold trustworthy.",
    "auto-coding": "Coding a text without a person when the coder's probability is above a threshold. The curve "
                   "shows, for each threshold, the share of texts coded automatically and the error expected "
                   "among them; the rest go to review. Very short or meaningless texts are never auto-coded.",
    "confidence": "The coder's probability for its first suggestion. It is calibrated on held-out texts, so it "
                  "can be read as the chance the suggestion is right.",
    "validation": "Texts held out of training (a slice of the real training texts, never the test set) that "
                  "choose the training settings and calibrate the probabilities.",
    "GGUF": "The file format of local language models used by llama.cpp; one file holds the whole model.",
    "context size": "How many tokens the model reads and writes at once; larger needs more memory.",
}

# Keys of the pages that are not the coding panel (the coding keys come from desktop/keys.py).
GLOBAL_KEYS = [("F1", "help for the current page"), ("Ctrl+1 … Ctrl+7", "go to a page"),
               ("Ctrl+N / Ctrl+O", "new / open project"), ("Ctrl+Shift+X", "cancel all running jobs"),
               ("Esc", "dismiss the message")]
PAGE_KEYS: dict[str, list[tuple[str, str]]] = {
    "classification": [("Ctrl+F", "search codes, titles and notes"), ("Enter", "go to the results")],
    "review": [("A", "accept the selected samples"), ("R", "reject them"), ("E", "edit the text"),
               ("L", "relabel (pick another code)"), ("U", "undo my decision: the rules decide again"),
               ("↑ / ↓", "move")],
}
# Used only while desktop/keys.py (the coding widgets' key table) is not there: the Code page's keys today.
FALLBACK_CODING_KEYS = [("type", "suggestions as you type"), ("↑ / ↓", "choose among the top 5"),
                        ("Enter", "accept the highlighted code"), ("Alt+1 … Alt+5", "accept that row"),
                        ("Ctrl+K", "pick any other code")]


def coding_keys() -> list[tuple[str, str]]:
    """(key, what it does) for the Code page and the batch queue.

    The hook to desktop/keys.py, where the coding widgets keep their key table: a list of (key, text)
    pairs, a {key: text} dict, or objects with `key`/`sequence` and `text`/`description`/`help`, under any
    of the names CODING_KEYS, KEYS or HELP. Until that file exists, the keys the Code page has today.
    """
    try:
        from desktop import keys  # type: ignore[attr-defined]
    except ImportError:
        return FALLBACK_CODING_KEYS
    table = next((getattr(keys, name) for name in ("CODING_KEYS", "KEYS", "HELP") if hasattr(keys, name)), None)
    if callable(table):
        table = table()
    if isinstance(table, dict):
        table = list(table.items())
    rows: list[tuple[str, str]] = []
    for entry in table or []:
        if isinstance(entry, (tuple, list)) and len(entry) >= 2:
            rows.append((str(entry[0]), str(entry[-1])))
            continue
        key = next((getattr(entry, a) for a in ("key", "sequence", "keys", "shortcut") if hasattr(entry, a)), None)
        text = next((getattr(entry, a) for a in ("text", "description", "help", "action", "label")
                     if hasattr(entry, a)), None)
        if key is not None and text is not None:
            rows.append((key if isinstance(key, str) else " / ".join(map(str, key)), str(text)))
    return rows or FALLBACK_CODING_KEYS


def page_keys(page: str) -> list[tuple[str, str]]:
    return coding_keys() if page == "code" else PAGE_KEYS.get(page, [])


def _table(rows: list[tuple[str, str]]) -> str:
    return ("<table cellpadding='3'>" + "".join(f"<tr><td><b>{escape(k)}</b></td><td>{escape(v)}</td></tr>"
                                               for k, v in rows) + "</table>")


def page_help_html(page: str) -> str:
    """The help for one page: its paragraph, its terms, its keys, then the whole glossary."""
    title, text = PAGES.get(page, ("statcoder", "statcoder codes free text into an official classification."))
    terms = PAGE_TERMS.get(page, [])
    parts = [f"<h2>{escape(title)}</h2><p>{escape(text)}</p>"]
    if terms:
        parts.append("<h3>Terms on this page</h3>" + "".join(
            f"<p><b>{escape(term)}</b>: {escape(GLOSSARY[term])}</p>" for term in terms))
    keys = page_keys(page)
    if keys:
        parts.append("<h3>Keys on this page</h3>" + _table(keys))
    parts.append("<h3>Keys everywhere</h3>" + _table(GLOBAL_KEYS))
    others = [term for term in GLOSSARY if term not in terms]
    parts.append("<h3>Other terms</h3>" + "".join(f"<p><b>{escape(term)}</b>: {escape(GLOSSARY[term])}</p>"
                                                   for term in others))
    return "".join(parts)


def term_tooltip(term: str) -> str:
    """A term's paragraph, for a tooltip where the term appears (ECE, macro-F1, n.e.c. …)."""
    return GLOSSARY.get(term, "")


class HelpDialog(QDialog):
    """The help of one page, readable with the keyboard (Esc closes)."""

    def __init__(self, page: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.page = page
        self.setWindowTitle(f"Help: {PAGES.get(page, ('statcoder',))[0]}")
        self.resize(720, 620)
        layout = QVBoxLayout(self)
        self.browser = QTextBrowser()
        self.browser.setOpenExternalLinks(False)
        self.browser.setHtml(page_help_html(page))
        layout.addWidget(self.browser, 1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    @property
    def text(self) -> str:
        return self.browser.toPlainText()
