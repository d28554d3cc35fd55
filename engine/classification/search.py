"""Code search that finds what people type: codes, titles and notes, stemmed, ranked, typo-tolerant.

Three steps, each only when the one before found nothing better:
1. a query that looks like a code ("10.5", "1051") matches codes by prefix, the exact code first;
2. SQLite's FTS5 index with the Porter stemmer (`code_search`, migration m090), so "dairy" finds
   "Operation of dairies"; every word must match, the last one as a prefix (search as you type);
   codes whose title has the words come first, in classification order, then the rest by BM25;
3. typo tolerance with rapidfuzz: each query word that is in no code is replaced by the closest word of
   the titles and notes ("bakry" -> "bakery");
4. a description whose words are not all in one code ranks codes by the words they have (FTS OR);
5. last, titles ranked by rapidfuzz similarity to the whole query.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from rapidfuzz import fuzz, process

if TYPE_CHECKING:
    from engine.store.project import Project

# BM25 weights of the index's columns (code, title, notes): a title word says more than a notes word.
WEIGHTS = (4.0, 10.0, 1.0)
# How close a typed word must be to a word of the index to stand in for it (rapidfuzz ratio, 0-100).
WORD_CUTOFF = 75.0
# How close a whole query must be to a title for the last-resort fuzzy ranking (WRatio, 0-100).
TITLE_CUTOFF = 70.0
_WORD = re.compile(r"\w+", re.UNICODE)
_CODE_LIKE = re.compile(r"^[A-Za-z]?\d[\d.\-]*$")


def words_of(query: str) -> list[str]:
    return [w.casefold() for w in _WORD.findall(query)]


def _fts_query(words: list[str], *, prefix_last: bool) -> str:
    # Quoted, so no word is read as an FTS operator (AND, OR, NOT, NEAR, column filters).
    terms = [f'"{w}"' for w in words]
    if prefix_last and terms:
        terms[-1] = f'({terms[-1]} OR {terms[-1]}*)'
    return " AND ".join(terms)


def _ids_by_fts(project: "Project", match: str, *, in_notes: bool, leaves_only: bool, limit: int,
                titles_first: bool = True) -> list[str]:
    """Codes whose code or title has every word first, in classification order (as a coder reads the
    printed classification); then those that have them only with the notes, best BM25 score first."""
    leaves = " AND c.is_leaf" if leaves_only else ""
    base = "SELECT c.code FROM code_search s JOIN codes c ON c.rowid = s.rowid WHERE code_search MATCH ?" + leaves
    found = []
    if titles_first or not in_notes:
        found = [r[0] for r in project.conn.execute(base + " ORDER BY c.ord LIMIT ?",
                                                    ("{code title} : (" + match + ")", limit))]
    if in_notes and len(found) < limit:
        ranked = f" ORDER BY bm25(code_search, {', '.join(map(str, WEIGHTS))}), c.ord LIMIT ?"
        seen = set(found)
        found += [r[0] for r in project.conn.execute(base + ranked, (match, limit + len(found)))
                  if r[0] not in seen][: limit - len(found)]
    return found


def _ids_by_code(project: "Project", query: str, *, leaves_only: bool, limit: int) -> list[str]:
    text = query.strip()
    digits = text.replace(".", "").replace("-", "")
    rows = project.conn.execute(
        "SELECT code FROM codes WHERE (code LIKE ? || '%' OR replace(replace(code, '.', ''), '-', '') LIKE ? || '%')"
        + (" AND is_leaf" if leaves_only else "")
        + " ORDER BY (code = ?) DESC, length(code), ord LIMIT ?", (text, digits, text, limit)).fetchall()
    return [r[0] for r in rows]


def _vocabulary(project: "Project") -> list[str]:
    """Every word of the codes' titles and notes as written (not stemmed: a typo is closest to a real word)."""
    count = project.conn.execute("SELECT COUNT(*), COALESCE(MAX(rowid), 0) FROM codes").fetchone()
    cache = getattr(project, "_search_vocabulary", None)
    if cache is None or cache[0] != count:
        words: set[str] = set()
        for title, notes in project.conn.execute("SELECT title, notes FROM code_search"):
            words.update(w for w in words_of(f"{title} {notes}") if len(w) > 2 and not w.isdigit())
        cache = (count, sorted(words))
        project._search_vocabulary = cache  # type: ignore[attr-defined]
    return cache[1]


def _corrected(project: "Project", words: list[str]) -> list[str] | None:
    """The query with each word that matches no code replaced by the closest indexed word; None if none."""
    vocabulary = _vocabulary(project)
    out, changed = [], False
    for word in words:
        hit = project.conn.execute("SELECT 1 FROM code_search WHERE code_search MATCH ? LIMIT 1",
                                   (_fts_query([word], prefix_last=True),)).fetchone()
        if hit or len(word) < 3:
            out.append(word)
            continue
        best = process.extractOne(word, vocabulary, scorer=fuzz.ratio, score_cutoff=WORD_CUTOFF)
        if best is None:
            return None
        out.append(best[0])
        changed = True
    return out if changed else None


def _ids_by_title_similarity(project: "Project", query: str, *, leaves_only: bool, limit: int) -> list[str]:
    rows = project.conn.execute("SELECT code, title FROM codes" + (" WHERE is_leaf" if leaves_only else "")
                                + " ORDER BY ord").fetchall()
    titles = {code: title.casefold() for code, title in rows}
    found = process.extract(query.casefold(), titles, scorer=fuzz.WRatio, limit=limit, score_cutoff=TITLE_CUTOFF)
    return [key for _title, _score, key in found]


def search_code_ids(project: "Project", query: str, *, limit: int = 50, in_notes: bool = True,
                    leaves_only: bool = False) -> list[str]:
    """The codes that match `query`, best first (see the module docstring for the steps)."""
    words = words_of(query)
    if not words or limit < 1:
        return []
    if _CODE_LIKE.match(query.strip()):
        found = _ids_by_code(project, query, leaves_only=leaves_only, limit=limit)
        if found:
            return found
    options = {"in_notes": in_notes, "leaves_only": leaves_only, "limit": limit}
    found = _ids_by_fts(project, _fts_query(words, prefix_last=True), **options)
    if found:
        return found
    corrected = _corrected(project, words)
    if corrected:
        found = _ids_by_fts(project, _fts_query(corrected, prefix_last=False), **options)
    if not found and len(words) > 1:
        # A whole description ("bakery making bread and cakes") rarely has every word in one code: rank
        # the codes by the words they do have.
        found = _ids_by_fts(project, " OR ".join(f'"{w}"' for w in (corrected or words)), titles_first=False,
                            **options)
    return found or _ids_by_title_similarity(project, query, leaves_only=leaves_only, limit=limit)
