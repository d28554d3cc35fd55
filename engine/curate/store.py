"""Curation on a project: run the rules over generation runs, store flags, decide statuses, keep them reversible.

A sample's current flags are those of the last curation that judged it (`samples.curation_id`). Its status
is 'rejected' by rule when a current, not overridden flag belongs to a rule that curation rejects on,
unless that rule relabels: then a flag that suggests another code makes the sample 'accepted' under
that code (`samples.curated_code`; the generated `code` is kept, and overriding the flag undoes it).
Decisions a user made (`status_by = 'user'`) are never changed by a rule. Nothing is deleted.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from typing import Iterable, Sequence

from engine.changes import Changes
from engine.errors import StatcoderError
from engine.jobs import CancelToken, ProgressCallback, ProgressInfo
from engine.classification.note_lines import notes_pairs
from engine.store.project import Project
from engine.curate.labelcheck import Check, LabelCheckOptions, label_check
from engine.curate.methods import (METHOD_RULES, MethodOptions, low_influence, low_logprob, model_disagreement,
                                   sungen_scores, supergen_scores)
from engine.curate.rules import (GarbageLimits, Hit, Sample, duplicates, excludes_conflicts, garbage, label_conflicts,
                    make_sample, note_copies, note_lines)

GARBAGE_RULES = ("empty", "too_short", "too_long", "prompt_echo", "repeated_tokens", "language")
ALL_RULES = GARBAGE_RULES + ("duplicate", "near_duplicate", "label_conflict", "note_copy", "note_conflict",
                             "excludes_conflict", "label_check", "over_quota") + METHOD_RULES
# A copy of a note line is a fine training text; it is marked so reviewers and metrics can see it.
DEFAULT_REJECT = frozenset(ALL_RULES) - {"note_copy"}
# Rules whose suggested code becomes the sample's curated label instead of rejecting it. Measured on
# the real-train half (bench/results/curation-dev-*): relabelling kept fastText at or above the
# uncurated level with either checker, where rejecting the same samples lowered it.
DEFAULT_RELABEL = frozenset({"excludes_conflict", "label_check"})
# When several relabelling rules suggest a code, the first one in this order wins: the notes' own
# excludes are explicit, the checker is statistical.
RELABEL_ORDER = ("excludes_conflict", "note_conflict", "label_conflict", "label_check")
STATUSES = ("accepted", "rejected")


@dataclass
class CurationOptions:
    near_threshold: float = 90.0        # rapidfuzz ratio (0-100) at or above which two texts are one
    note_threshold: float = 90.0
    rules: frozenset[str] = frozenset(ALL_RULES)
    reject: frozenset[str] = DEFAULT_REJECT
    relabel: frozenset[str] = DEFAULT_RELABEL   # these rules relabel to their suggested code, when they have one
    garbage: GarbageLimits | None = None          # None: defaults, in the project's language
    # None: no label check; "auto": default_label_check(project) decides (embeddings for English)
    label_check: LabelCheckOptions | str | None = field(default_factory=LabelCheckOptions)
    use_real_train: bool = True         # real-train texts as label-check training data and conflict evidence
    use_notes: bool = True              # note lines as label-check training data
    quota: int | None = None            # wanted accepted samples per code; None: the runs' own quota
    cap: int | None = None              # at most this many accepted per code; the rest flagged over_quota
    # SuperGen / SunGen / FuseGen selection (engine.curate.methods); each off unless its parameter is set
    methods: MethodOptions = field(default_factory=MethodOptions)

    def describe(self) -> dict:
        unknown = (set(self.rules) | set(self.reject) | set(self.relabel)) - set(ALL_RULES)
        if unknown:
            raise StatcoderError(f"unknown curation rule(s): {', '.join(sorted(unknown))}; "
                                 f"known: {', '.join(ALL_RULES)}")
        return {"near_threshold": self.near_threshold, "note_threshold": self.note_threshold,
                "rules": sorted(self.rules), "reject": sorted(self.reject), "relabel": sorted(self.relabel),
                "garbage": asdict(self.garbage) if self.garbage else None,
                "label_check": self.label_check.describe() if isinstance(self.label_check, LabelCheckOptions)
                else self.label_check,
                "use_real_train": self.use_real_train, "use_notes": self.use_notes,
                "quota": self.quota, "cap": self.cap, "methods": self.methods.describe()}


@dataclass
class BalanceReport:
    quota: int
    accepted: dict[str, int]            # code -> accepted samples
    under_quota: dict[str, int]         # code -> how many more are needed

    def lines(self, limit: int | None = 40) -> list[str]:
        if not self.under_quota:
            return [f"every code has at least {self.quota} accepted samples"]
        shown = sorted(self.under_quota.items())[:limit]
        listed = ", ".join(f"{c} (+{n})" for c, n in shown)
        more = len(self.under_quota) - len(shown)
        return [f"{len(self.under_quota)} codes under the quota of {self.quota}: {listed}"
                + (f", ... and {more} more" if more else "")]


@dataclass
class CurationResult:
    curation_id: int
    run_ids: list[int]
    samples: int
    accepted: int
    rejected: int
    relabeled: int
    flags: dict[str, int]               # rule -> samples flagged in this curation
    balance: BalanceReport
    seconds: float
    judge: dict | None = None           # the LLM judge's summary when it read the label check's flags

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def changes(self) -> Changes:
        return Changes(samples=True, curation=True)

    def lines(self) -> list[str]:
        out = [f"curation {self.curation_id}: {self.samples} samples from runs "
               f"{', '.join(map(str, self.run_ids)) or '-'}: {self.accepted} accepted "
               f"({self.relabeled} of them relabelled), {self.rejected} rejected ({self.seconds:.1f} s)"]
        out += [f"  {rule:<18} {n}" for rule, n in sorted(self.flags.items(), key=lambda kv: -kv[1])]
        if self.judge is not None:
            j = self.judge
            out.append(f"judge: {j['judged']} flags read, {j['confirmed']} confirmed, {j['dismissed']} dismissed"
                       + (f" ({j['reused']} answered from earlier runs' verdicts)" if j.get("reused") else "")
                       + (f", {j['seconds_per_judged']:.1f} s per flag asked" if j.get("seconds_per_judged") else ""))
        return out + self.balance.lines()


def _scope(run_ids: Sequence[int] | None) -> tuple[str, list]:
    if run_ids is None:
        return "", []
    return f" AND s.run_id IN ({','.join('?' * len(run_ids))})", list(run_ids)


def _run_ids(project: Project, run_ids: Sequence[int] | None) -> list[int]:
    known = [r[0] for r in project.conn.execute("SELECT id FROM generation_runs ORDER BY id")]
    if run_ids is None:
        return known
    missing = sorted(set(run_ids) - set(known))
    if missing:
        raise StatcoderError(f"no generation run {', '.join(map(str, missing))} in this project")
    return list(run_ids)


def _reference_texts(project: Project, codes: set[str], options: CurationOptions):
    rows = project.conn.execute(
        "SELECT code, parent, title, includes, also_includes, notes, is_leaf FROM codes").fetchall()
    parent = {r[0]: r[1] for r in rows}
    # Leaf codes only besides the samples' own: a sample may well repeat a line of its parent group.
    lines = {r[0]: note_lines(r[2], r[3], r[4], r[5]) for r in rows if r[0] in codes or r[6]}
    links_of: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for code, target, text in project.conn.execute("SELECT code, target, text FROM code_links WHERE kind = 'excludes'"):
        links_of[code].append((target, text))
    links: dict[str, list[tuple[str, str]]] = {}
    for code in codes:
        chain, node = [], code
        while node is not None:
            chain.extend(links_of.get(node, []))
            node = parent.get(node)
        links[code] = [(t, x) for t, x in chain if t != code]
    real: list[tuple[str, str]] = []
    if options.use_real_train and codes:
        marks = ",".join("?" * len(codes))
        # Only the train split: test texts must never shape what a coder is trained on.
        real = [(t, c) for t, c in project.conn.execute(
            f"SELECT text, code FROM real_texts WHERE split = 'train' AND code IN ({marks}) ORDER BY id",
            sorted(codes))]
    return lines, links, real


def curate(project: Project, *, run_ids: Sequence[int] | None = None,
           options: CurationOptions | None = None, progress: ProgressCallback | None = None,
           cancel: CancelToken | None = None) -> CurationResult:
    """Judge every sample of the given generation runs (all runs when None) and store the outcome."""
    options = options or CurationOptions()
    if options.label_check == "auto":
        options = dataclasses.replace(options, label_check=default_label_check(project))
    params = options.describe()
    start = time.monotonic()
    runs = _run_ids(project, run_ids)
    where, args = _scope(runs)
    rows = project.conn.execute(
        f"SELECT s.id, s.code, s.text, s.status, s.status_by FROM samples s WHERE 1{where} ORDER BY s.id",
        args).fetchall()
    samples = [make_sample(r[0], r[1], r[2]) for r in rows]
    user_status = {r[0]: r[3] for r in rows if r[4] == "user"}
    codes = {s.code for s in samples}
    lines, links, real = _reference_texts(project, codes, options)
    limits = options.garbage or GarbageLimits(language=_language(project))
    enabled = options.rules

    def stage(message: str) -> None:
        # The rules are quick next to the label check; they report a stage, and each is a point to cancel.
        if cancel is not None:
            cancel.check()
        if progress is not None:
            progress(ProgressInfo(0, 0, message))

    hits: list[Hit] = []
    stage(f"{len(samples):,} samples: garbage rules")
    if enabled & set(GARBAGE_RULES):
        hits += [h for h in garbage(samples, limits=limits) if h.rule in enabled]
    junk = {h.sample_id for h in hits} | {sid for sid, st in user_status.items() if st == "rejected"}
    clean = [s for s in samples if s.id not in junk]
    stage("duplicates and conflicts")
    if enabled & {"duplicate", "near_duplicate"}:
        hits += [h for h in duplicates(clean, threshold=options.near_threshold) if h.rule in enabled]
    if "label_conflict" in enabled:
        hits += label_conflicts(clean, real_train=real)
    if enabled & {"note_copy", "note_conflict"}:
        hits += [h for h in note_copies(clean, lines, threshold=options.note_threshold) if h.rule in enabled]
    if "excludes_conflict" in enabled:
        hits += excludes_conflicts(clean, links)
    hits += _method_hits(project, clean, real, options, progress=progress, cancel=cancel)
    checks: list[Check] = []
    own = {s.id: s.code for s in samples}
    overridden = _previous_overrides(project, list(own))
    known = {r[0] for r in project.conn.execute("SELECT code FROM codes")}
    stage("label check")
    if options.label_check is not None and "label_check" in enabled:
        # The note lines the `notes` training arm uses, so the checker knows what the notes say.
        reference = list(real) + (list(notes_pairs(project, sorted(codes))) if options.use_notes else [])
        dropped = {h.sample_id for h in hits if h.rule in options.reject}
        # Samples a reject flag (not overridden) or a user already decides: a second reader of their
        # label-check flags (the LLM judge, seconds per flag) could not change what happens to them.
        settled = _rejected_anyway(hits, own, options, overridden, known)
        checks, check_hits = label_check(samples, reference=reference, exclude_from_training=dropped | junk,
                                         settled=settled | set(user_status),
                                         options=options.label_check, progress=progress, cancel=cancel)
        hits += check_hits
    hits = [dataclasses.replace(h, suggested_code=h.suggested_code if h.suggested_code in known else None)
            for h in hits]
    decided = _decide_all(hits, own, options, overridden, user_status)
    if options.cap is not None and "over_quota" in enabled:
        rejected = {sid for sid, (status, _) in decided.items() if status == "rejected"}
        hits += _over_cap(samples, rejected, checks, options.cap)
        decided = _decide_all(hits, own, options, overridden, user_status)
    rejected = {sid for sid, (status, _) in decided.items() if status == "rejected"}
    relabeled = sum(1 for _, curated in decided.values() if curated)

    quota = options.quota if options.quota is not None else _runs_quota(project, runs)
    stage("storing flags and statuses")
    with project.transaction() as conn:
        cur = conn.execute("INSERT INTO curation_runs (params) VALUES (?)",
                           (json.dumps({**params, "run_ids": runs}),))
        cid = cur.lastrowid
        conn.executemany(
            "INSERT INTO sample_flags (sample_id, curation_id, rule, reason, suggested_code, overridden)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [(h.sample_id, cid, h.rule, h.reason, h.suggested_code, int((h.sample_id, h.rule) in overridden))
             for h in hits])
        conn.executemany(
            "INSERT INTO sample_checks (sample_id, curation_id, own_rank, own_score, top_code, top_score)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [(c.sample_id, cid, c.own_rank, c.own_score, c.top_code, c.top_score) for c in checks])
        conn.executemany("UPDATE samples SET curation_id = ? WHERE id = ?", [(cid, s.id) for s in samples])
        refresh_status(conn, [s.id for s in samples])
        balance = balance_report(project, run_ids=runs, quota=quota)
        counts = Counter(rule for rule in {(h.sample_id, h.rule): h.rule for h in hits}.values())
        result = CurationResult(cid, runs, len(samples), len(samples) - len(rejected), len(rejected), relabeled,
                                dict(counts), balance, time.monotonic() - start)
        conn.execute("UPDATE curation_runs SET report = ?, finished = strftime('%Y-%m-%dT%H:%M:%SZ','now')"
                     " WHERE id = ?", (json.dumps(result.to_dict()), cid))
    return result


def _method_hits(project: Project, clean: Sequence[Sample], real: Sequence[tuple[str, str]], options: CurationOptions,
                 *, progress: ProgressCallback | None, cancel: CancelToken | None) -> list[Hit]:
    """SuperGen, SunGen and FuseGen flags over the samples that survived the garbage rules."""
    methods, enabled = options.methods, options.rules
    methods.check()
    if not clean:
        return []
    hits: list[Hit] = []
    ids = [s.id for s in clean]
    meta: dict[int, tuple] = {}
    for i in range(0, len(ids), 500):
        chunk = ids[i:i + 500]
        for row in project.conn.execute(f"SELECT id, logprob, completion_tokens, logprob_tokens, model_sha256"
                                        f" FROM samples"
                                        f" WHERE id IN ({','.join('?' * len(chunk))})", chunk):
            meta[row[0]] = row[1:]
    if methods.supergen_share > 0 and "low_logprob" in enabled:
        scores = supergen_scores([(sid, lp, tokens, phrase_tokens)
                                  for sid, (lp, tokens, phrase_tokens, _) in meta.items()])
        hits += low_logprob(clean, scores, share=methods.supergen_share,
                            per_request={sid for sid, m in meta.items() if not m[2]})
    codes = sorted({s.code for s in clean})
    notes = list(notes_pairs(project, codes)) if options.use_notes else []
    if methods.sungen_share > 0 and "low_influence" in enabled:
        from engine.coders.embedding.cache import embed_cached
        from engine.coders.embedding.model import load_embedding_model

        reference = notes + list(real)
        if not reference:
            raise StatcoderError("SunGen needs a clean set: the notes lines or real-train texts; none is in use")
        embedder = load_embedding_model(None)
        vectors = embed_cached(project, embedder, [s.text for s in clean] + [t for t, _ in reference],
                               progress=progress, cancel=cancel)
        scores = sungen_scores(vectors[: len(clean)], [s.code for s in clean], vectors[len(clean):],
                               [c for _, c in reference], c=methods.sungen_c)
        hits += low_influence(clean, {s.id: float(v) for s, v in zip(clean, scores)}, share=methods.sungen_share)
    if methods.fusegen_top_k > 0 and "model_disagreement" in enabled:
        hits += model_disagreement(clean, {sid: m[3] for sid, m in meta.items()}, notes + list(real),
                                   top_k=methods.fusegen_top_k)
    return hits


def _previous_overrides(project: Project, sample_ids: list[int]) -> set[tuple[int, str]]:
    """(sample, rule) pairs a user overrode in the current curation: a new curation keeps the override."""
    rows = project.conn.execute(
        "SELECT f.sample_id, f.rule FROM sample_flags f JOIN samples s ON s.id = f.sample_id"
        " WHERE f.curation_id = s.curation_id AND f.overridden = 1").fetchall()
    wanted = set(sample_ids)
    return {(sid, rule) for sid, rule in rows if sid in wanted}


def _rejected_anyway(hits: Sequence[Hit], own: dict[int, str], options: CurationOptions,
                     overridden: set[tuple[int, str]], known: set[str]) -> set[int]:
    """Samples one of these flags rejects whatever else is flagged (as `decide` reads them: a flag of a
    reject rule that is not overridden and does not relabel to a known code)."""
    out = set()
    for h in hits:
        if h.rule not in options.reject or (h.sample_id, h.rule) in overridden:
            continue
        suggested = h.suggested_code if h.suggested_code in known else None
        if h.rule in options.relabel and suggested and suggested != own[h.sample_id]:
            continue
        out.add(h.sample_id)
    return out


def decide(own_code: str, flags: Iterable[tuple[str, str | None]], reject: Iterable[str],
           relabel: Iterable[str]) -> tuple[str, str | None]:
    """(status, curated code) of a sample no user decided, from its current, not overridden flags."""
    reject, relabel = set(reject), set(relabel)
    suggestions: dict[str, str] = {}
    for rule, suggested in flags:
        if rule in relabel and suggested and suggested != own_code:
            suggestions.setdefault(rule, suggested)
        elif rule in reject:
            return "rejected", None
    for rule in RELABEL_ORDER:
        if rule in suggestions:
            return "accepted", suggestions[rule]
    return "accepted", None


def _decide_all(hits: Sequence[Hit], own: dict[int, str], options: CurationOptions,
                overridden: set[tuple[int, str]], user_status: dict[int, str]) -> dict[int, tuple[str, str | None]]:
    flags: dict[int, list[tuple[str, str | None]]] = defaultdict(list)
    for h in hits:
        if (h.sample_id, h.rule) not in overridden:
            flags[h.sample_id].append((h.rule, h.suggested_code))
    out = {sid: decide(code, flags.get(sid, ()), options.reject, options.relabel) for sid, code in own.items()}
    out.update({sid: (status, None) for sid, status in user_status.items() if sid in own})
    return out


def _over_cap(samples: Sequence[Sample], rejected: set[int], checks: Sequence[Check], cap: int) -> list[Hit]:
    """Keep the `cap` samples per code the label check is surest of (then the earliest); flag the rest."""
    score = {c.sample_id: c.own_score for c in checks}
    by_code: dict[str, list[Sample]] = defaultdict(list)
    for sample in samples:
        if sample.id not in rejected:
            by_code[sample.code].append(sample)
    hits = []
    for code, group in by_code.items():
        group.sort(key=lambda s: (-score.get(s.id, 0.0), s.id))
        hits += [Hit(s.id, "over_quota", f"{code} already has {cap} accepted samples") for s in group[cap:]]
    return hits


def _runs_quota(project: Project, runs: Sequence[int]) -> int:
    if not runs:
        return 0
    marks = ",".join("?" * len(runs))
    row = project.conn.execute(f"SELECT MAX(quota) FROM generation_runs WHERE id IN ({marks})", list(runs)).fetchone()
    return int(row[0] or 0)


def balance_report(project: Project, *, run_ids: Sequence[int] | None = None,
                   quota: int | None = None) -> BalanceReport:
    """Accepted samples per code (their curated label) against the quota; codes the runs asked for but
    lack are listed too."""
    runs = _run_ids(project, run_ids)
    where, args = _scope(runs)
    quota = quota if quota is not None else _runs_quota(project, runs)
    accepted: dict[str, int] = {}
    if not runs:
        return BalanceReport(quota, {}, {})
    for (codes_json,) in project.conn.execute(
            f"SELECT codes FROM generation_runs WHERE id IN ({','.join('?' * len(runs))})", runs):
        for code in json.loads(codes_json or "[]"):
            accepted.setdefault(code, 0)
    for code, n in project.conn.execute(
            f"SELECT COALESCE(s.curated_code, s.code) AS label, SUM(s.status = 'accepted') FROM samples s"
            f" WHERE 1{where} GROUP BY label", args):
        if code in accepted:  # a sample relabelled to a code outside the runs does not make it wanted
            accepted[code] = int(n or 0)
    under = {code: quota - n for code, n in sorted(accepted.items()) if n < quota}
    return BalanceReport(quota, dict(sorted(accepted.items())), under)


def refresh_status(conn, sample_ids: Sequence[int]) -> int:
    """Status and curated label from current flags for samples no user decided; returns how many changed."""
    params_of = {cid: json.loads(params) for cid, params in conn.execute("SELECT id, params FROM curation_runs")}
    changed = 0
    ids = list(sample_ids)
    for i in range(0, len(ids), 500):  # stay far below SQLite's limit on bound parameters
        chunk = ids[i:i + 500]
        marks = ",".join("?" * len(chunk))
        flags: dict[int, list[tuple[str, str | None]]] = defaultdict(list)
        curation: dict[int, int] = {}
        for sid, rule, suggested, cid in conn.execute(
                "SELECT f.sample_id, f.rule, f.suggested_code, f.curation_id FROM sample_flags f"
                " JOIN samples s ON s.id = f.sample_id"
                f" WHERE f.sample_id IN ({marks}) AND f.curation_id = s.curation_id AND NOT f.overridden"
                " ORDER BY f.id", chunk):
            flags[sid].append((rule, suggested))
            curation[sid] = cid
        updates = []
        for sid, code, status, status_by, curated in conn.execute(
                f"SELECT id, code, status, status_by, curated_code FROM samples WHERE id IN ({marks})"
                " AND status_by != 'user'", chunk):
            params = params_of.get(curation.get(sid), {})
            # Curations stored before relabelling existed rejected on every flag they list.
            new_status, new_curated = decide(code, flags.get(sid, ()), params.get("reject", ()),
                                             params.get("relabel", ()))
            new = (new_status, "rule" if new_status == "rejected" or new_curated else "default", new_curated)
            if (status, status_by, curated) != new:
                updates.append((*new, sid))
        conn.executemany("UPDATE samples SET status = ?, status_by = ?, curated_code = ? WHERE id = ?", updates)
        changed += len(updates)
    return changed


def _language(project: Project) -> str:
    """The classification's language (what its notes, and so its samples, are written in)."""
    return (project.get_setting("classification", {}) or {}).get("language") or "en"


def default_label_check(project: Project) -> LabelCheckOptions:
    """The label check curation uses unless told otherwise.

    For an English classification with the shipped MiniLM at hand: the embedding classifier trained on
    the notes (plus real-train, when curation may use it) judges every sample. On the NACE 10-11
    development set it beat the k-fold fastText check for a fastText coder trained on the curated data
    (53.9 % against 50.8 % top-1 with relabelling; bench/results/curation-dev-*). MiniLM reads English
    only, so any other language gets the language-neutral k-fold fastText check.
    """
    if _language(project) == "en":
        try:
            from engine.coders.embedding.model import default_model_path
            from engine.coders.embedding.checker import embedding_checker
        except ImportError:  # the embedding stage is optional in a trimmed install
            return LabelCheckOptions()
        if default_model_path().is_file():
            return LabelCheckOptions(mode="notes", checker=embedding_checker())
    return LabelCheckOptions()
