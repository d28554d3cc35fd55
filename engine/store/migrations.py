"""Numbered schema migrations of the project file, applied in order on open.

Each migration is a function named ``mNNN_what`` that runs inside one transaction.
Applied names are recorded in ``_migrations``; a file that records a migration this
build does not know was written by a newer statcoder and is refused.
"""

from __future__ import annotations

import sqlite3
from typing import Callable

Migration = Callable[[sqlite3.Connection], None]
MIGRATIONS: list[tuple[str, Migration]] = []


def migration(fn: Migration) -> Migration:
    MIGRATIONS.append((fn.__name__, fn))
    return fn


def _script(conn: sqlite3.Connection, sql: str) -> None:
    """Run several statements inside the caller's transaction (executescript would commit it)."""
    statement = ""
    for line in sql.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            conn.execute(statement)
            statement = ""
    if statement.strip():
        raise ValueError(f"incomplete SQL statement in migration: {statement[:60]}")


@migration
def m001_classification(conn: sqlite3.Connection) -> None:
    _script(conn, 
        """
        CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT);
        CREATE TABLE imports (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,              -- classification | realdata
            format TEXT NOT NULL,
            source TEXT NOT NULL,
            sha256 TEXT,
            rows INTEGER NOT NULL,
            report TEXT,                     -- JSON: warnings, skipped rows
            created TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
        );
        CREATE TABLE codes (
            code TEXT PRIMARY KEY,
            parent TEXT REFERENCES codes(code) DEFERRABLE INITIALLY DEFERRED,
            level INTEGER NOT NULL,
            title TEXT NOT NULL,
            includes TEXT NOT NULL DEFAULT '',
            also_includes TEXT NOT NULL DEFAULT '',
            excludes TEXT NOT NULL DEFAULT '',
            notes TEXT NOT NULL DEFAULT '',
            is_leaf INTEGER NOT NULL DEFAULT 0,
            ord INTEGER NOT NULL
        );
        CREATE INDEX codes_parent ON codes(parent);
        CREATE TABLE code_links (
            id INTEGER PRIMARY KEY,
            code TEXT NOT NULL REFERENCES codes(code) ON DELETE CASCADE,
            target TEXT NOT NULL REFERENCES codes(code) ON DELETE CASCADE,
            kind TEXT NOT NULL DEFAULT 'excludes',
            text TEXT NOT NULL
        );
        CREATE INDEX code_links_code ON code_links(code);
        CREATE INDEX code_links_target ON code_links(target);
        """
    )


@migration
def m002_real_texts(conn: sqlite3.Connection) -> None:
    _script(conn, 
        """
        CREATE TABLE real_texts (
            id INTEGER PRIMARY KEY,
            text TEXT NOT NULL,
            text_key TEXT NOT NULL,          -- normalised text, the dedup and split key
            code TEXT NOT NULL REFERENCES codes(code),
            split TEXT NOT NULL CHECK (split IN ('train', 'test')),
            source TEXT NOT NULL,            -- import | correction | confirmation
            import_id INTEGER REFERENCES imports(id),
            source_row INTEGER
        );
        CREATE INDEX real_texts_code ON real_texts(code);
        CREATE INDEX real_texts_split ON real_texts(split);
        CREATE INDEX real_texts_key ON real_texts(text_key);
        """
    )


@migration
def m003_generation(conn: sqlite3.Connection) -> None:
    _script(conn, 
        """
        CREATE TABLE generation_runs (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'created',   -- created | running | cancelled | done | failed
            model_name TEXT,
            model_sha256 TEXT,
            backend TEXT,
            strategies TEXT NOT NULL,                 -- JSON list
            codes TEXT NOT NULL,                      -- JSON list
            quota INTEGER NOT NULL,
            seed INTEGER NOT NULL,
            params TEXT NOT NULL,                     -- JSON: sampling, grid, language...
            created TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
            finished TEXT
        );
        CREATE TABLE samples (
            id INTEGER PRIMARY KEY,
            run_id INTEGER NOT NULL REFERENCES generation_runs(id) ON DELETE CASCADE,
            code TEXT NOT NULL REFERENCES codes(code),
            text TEXT NOT NULL,
            text_key TEXT NOT NULL,
            strategy TEXT NOT NULL,
            unit TEXT NOT NULL,                       -- the work unit that made it, for resume
            prompt_version TEXT NOT NULL,
            prompt_hash TEXT NOT NULL,
            condition TEXT,                           -- JSON grid cell
            seed INTEGER NOT NULL,
            model_sha256 TEXT NOT NULL,
            backend TEXT NOT NULL,
            params TEXT NOT NULL,                     -- JSON sampling parameters
            prompt_tokens INTEGER,
            completion_tokens INTEGER,
            logprob REAL,
            status TEXT NOT NULL DEFAULT 'accepted',  -- accepted | rejected
            status_by TEXT NOT NULL DEFAULT 'default',-- default | rule | user
            created TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
        );
        CREATE INDEX samples_run ON samples(run_id);
        CREATE INDEX samples_code ON samples(code);
        CREATE INDEX samples_unit ON samples(run_id, unit);
        """
    )


@migration
def m004_curation(conn: sqlite3.Connection) -> None:
    _script(conn, 
        """
        CREATE TABLE curation_runs (
            id INTEGER PRIMARY KEY,
            params TEXT NOT NULL,                     -- JSON: thresholds, k, rules
            report TEXT,
            created TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
        );
        CREATE TABLE sample_flags (
            id INTEGER PRIMARY KEY,
            sample_id INTEGER NOT NULL REFERENCES samples(id) ON DELETE CASCADE,
            curation_id INTEGER REFERENCES curation_runs(id) ON DELETE CASCADE,
            rule TEXT NOT NULL,
            reason TEXT NOT NULL,
            suggested_code TEXT REFERENCES codes(code),
            overridden INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX sample_flags_sample ON sample_flags(sample_id);
        CREATE TABLE augmented_texts (
            id INTEGER PRIMARY KEY,
            real_id INTEGER NOT NULL REFERENCES real_texts(id) ON DELETE CASCADE,
            text TEXT NOT NULL,
            code TEXT NOT NULL REFERENCES codes(code),
            ops TEXT NOT NULL,                        -- JSON list of operations applied
            seed INTEGER NOT NULL
        );
        """
    )


@migration
def m005_models_evaluations(conn: sqlite3.Connection) -> None:
    _script(conn, 
        """
        CREATE TABLE models (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            kind TEXT NOT NULL,                       -- fasttext | embedding | ensemble
            path TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            params TEXT NOT NULL,                     -- JSON hyperparameters
            data TEXT NOT NULL,                       -- JSON data composition
            train_s REAL,
            validation TEXT,                          -- JSON validation scores
            created TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
        );
        CREATE TABLE evaluations (
            id INTEGER PRIMARY KEY,
            model_id INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,
            dataset TEXT NOT NULL,
            metrics TEXT NOT NULL,                    -- JSON
            report_path TEXT,
            created TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
        );
        CREATE TABLE corrections (
            id INTEGER PRIMARY KEY,
            text TEXT NOT NULL,
            suggested_code TEXT REFERENCES codes(code),
            chosen_code TEXT NOT NULL REFERENCES codes(code),
            kind TEXT NOT NULL CHECK (kind IN ('confirmation', 'correction')),
            model_id INTEGER REFERENCES models(id) ON DELETE SET NULL,
            confidence REAL,
            real_id INTEGER REFERENCES real_texts(id) ON DELETE SET NULL,
            created TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
        );
        """
    )


@migration
def m020_curation_state(conn: sqlite3.Connection) -> None:
    """Which curation judged a sample last (its flags are the current ones), and what the label check said."""
    _script(conn, 
        """
        ALTER TABLE samples ADD COLUMN curation_id INTEGER REFERENCES curation_runs(id);
        ALTER TABLE curation_runs ADD COLUMN finished TEXT;
        CREATE INDEX sample_flags_curation ON sample_flags(curation_id);
        CREATE TABLE sample_checks (
            sample_id INTEGER NOT NULL REFERENCES samples(id) ON DELETE CASCADE,
            curation_id INTEGER NOT NULL REFERENCES curation_runs(id) ON DELETE CASCADE,
            own_rank INTEGER,                         -- 1-based rank of the sample's own code; NULL: not ranked
            own_score REAL NOT NULL,
            top_code TEXT,
            top_score REAL NOT NULL,
            PRIMARY KEY (sample_id, curation_id)
        );
        CREATE INDEX augmented_texts_real ON augmented_texts(real_id);
        """
    )


@migration
def m010_generation_units(conn: sqlite3.Connection) -> None:
    """One row per finished generation request, written with its samples: what makes resume exact."""
    _script(conn,
        """
        CREATE TABLE generation_units (
            id INTEGER PRIMARY KEY,
            run_id INTEGER NOT NULL REFERENCES generation_runs(id) ON DELETE CASCADE,
            unit TEXT NOT NULL,
            code TEXT NOT NULL REFERENCES codes(code),
            strategy TEXT NOT NULL,
            accepted INTEGER NOT NULL,
            parsed INTEGER NOT NULL,
            parse_ok INTEGER NOT NULL,                -- 0: output was not a clean JSON list
            prompt_tokens INTEGER,
            cached_tokens INTEGER,
            completion_tokens INTEGER,
            seconds REAL,
            raw_output TEXT,                          -- kept only when parsing failed, for inspection
            created TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
            UNIQUE (run_id, unit)
        );
        ALTER TABLE generation_runs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE generation_runs ADD COLUMN error TEXT;
        ALTER TABLE generation_runs ADD COLUMN device TEXT;
        """
    )


@migration
def m040_embedding_cache(conn: sqlite3.Connection) -> None:
    """Sentence embeddings keyed by (text, embedding model sha256), so retraining never re-embeds a text."""
    _script(conn,
        """
        CREATE TABLE embedding_cache (
            model_sha256 TEXT NOT NULL,
            text TEXT NOT NULL,
            vector BLOB NOT NULL,                     -- float32, little-endian, L2-normalised
            PRIMARY KEY (model_sha256, text)
        ) WITHOUT ROWID;
        """
    )


@migration
def m050_sample_edits(conn: sqlite3.Connection) -> None:
    """What a sample said before a reviewer edited its text or relabelled it (provenance is never lost)."""
    _script(conn,
        """
        ALTER TABLE samples ADD COLUMN original_text TEXT;
        ALTER TABLE samples ADD COLUMN original_code TEXT;
        """
    )


@migration
def m060_curated_labels(conn: sqlite3.Connection) -> None:
    """The label curation gives a sample when a rule suggests another code (an excludes line or the
    label check says it belongs there). The generated `code` is never changed: training reads
    COALESCE(curated_code, code), and overriding the flag clears it."""
    _script(conn,
        """
        ALTER TABLE samples ADD COLUMN curated_code TEXT REFERENCES codes(code);
        """
    )


@migration
def m075_uncoded_texts(conn: sqlite3.Connection) -> None:
    """Uncoded texts an office already has (a CSV with only a text column), and the labels the best
    coder + the LLM judge gave them. A 'pseudo' label is a training source of its own; 'review' ones
    wait for a person; 'held' ones are neither. Every label keeps its provenance: the coder model and
    sha256, the judge LLM's sha256 (NULL when not judged) and the score."""
    _script(conn,
        """
        CREATE TABLE uncoded_texts (
            id INTEGER PRIMARY KEY,
            text TEXT NOT NULL,
            text_key TEXT NOT NULL UNIQUE,   -- normalised text, as real_texts.text_key
            import_id INTEGER REFERENCES imports(id),
            source_row INTEGER
        );
        CREATE TABLE pseudo_labels (
            uncoded_id INTEGER PRIMARY KEY REFERENCES uncoded_texts(id) ON DELETE CASCADE,
            code TEXT NOT NULL REFERENCES codes(code),
            score REAL NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('pseudo', 'held', 'review', 'reviewed')),
            coder_code TEXT,                 -- the coder's own first code, before the judge
            coder_score REAL,
            judged INTEGER NOT NULL DEFAULT 0,
            coder_model_id INTEGER,
            coder_sha256 TEXT NOT NULL,
            judge_model_sha256 TEXT,
            threshold REAL,
            created TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ','now'))
        );
        CREATE INDEX pseudo_labels_status ON pseudo_labels(status);
        """
    )


@migration
def m085_generation_lease(conn: sqlite3.Connection) -> None:
    """Who is running a generation run now: one runner per run (two overshoot the quota), and a
    runner that died (kill -9, a crash) is recognised by its dead pid or its silent heartbeat."""
    _script(conn,
        """
        ALTER TABLE generation_runs ADD COLUMN lease_owner TEXT;      -- random token of the runner
        ALTER TABLE generation_runs ADD COLUMN lease_pid INTEGER;
        ALTER TABLE generation_runs ADD COLUMN lease_host TEXT;
        ALTER TABLE generation_runs ADD COLUMN lease_heartbeat REAL;  -- unix seconds of its last sign of life
        """
    )


@migration
def m090_code_search(conn: sqlite3.Connection) -> None:
    """A full-text index of codes, titles and notes with the Porter stemmer (SQLite's FTS5, built in), so
    "dairy" finds "Operation of dairies". Triggers keep it in step with `codes` whoever writes them
    (an import in this process or another); the notes column holds includes, also-includes and notes,
    not the excludes, which name what a code is not."""
    _script(conn,
        """
        CREATE VIRTUAL TABLE code_search USING fts5(code, title, notes, tokenize = 'porter unicode61');
        INSERT INTO code_search (rowid, code, title, notes)
            SELECT rowid, code, title, includes || ' ' || also_includes || ' ' || notes FROM codes;
        CREATE TRIGGER codes_search_insert AFTER INSERT ON codes BEGIN
            INSERT INTO code_search (rowid, code, title, notes)
            VALUES (new.rowid, new.code, new.title, new.includes || ' ' || new.also_includes || ' ' || new.notes);
        END;
        CREATE TRIGGER codes_search_delete AFTER DELETE ON codes BEGIN
            DELETE FROM code_search WHERE rowid = old.rowid;
        END;
        CREATE TRIGGER codes_search_update AFTER UPDATE ON codes BEGIN
            DELETE FROM code_search WHERE rowid = old.rowid;
            INSERT INTO code_search (rowid, code, title, notes)
            VALUES (new.rowid, new.code, new.title, new.includes || ' ' || new.also_includes || ' ' || new.notes);
        END;
        """
    )


@migration
def m095_uncodable_decisions(conn: sqlite3.Connection) -> None:
    """A coder may mark a text as one that cannot be coded: it is stored as a decision of kind
    'uncodable' with no chosen code, and never becomes a training text. SQLite cannot change a CHECK
    constraint in place, so the table is rebuilt with its rows."""
    _script(conn,
        """
        CREATE TABLE corrections_new (
            id INTEGER PRIMARY KEY,
            text TEXT NOT NULL,
            suggested_code TEXT REFERENCES codes(code),
            chosen_code TEXT REFERENCES codes(code),  -- NULL only for 'uncodable'
            kind TEXT NOT NULL CHECK (kind IN ('confirmation', 'correction', 'uncodable')),
            model_id INTEGER REFERENCES models(id) ON DELETE SET NULL,
            confidence REAL,
            real_id INTEGER REFERENCES real_texts(id) ON DELETE SET NULL,
            created TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
            CHECK ((chosen_code IS NULL) = (kind = 'uncodable'))
        );
        INSERT INTO corrections_new (id, text, suggested_code, chosen_code, kind, model_id, confidence, real_id, created)
            SELECT id, text, suggested_code, chosen_code, kind, model_id, confidence, real_id, created FROM corrections;
        DROP TABLE corrections;
        ALTER TABLE corrections_new RENAME TO corrections;
        """
    )


@migration
def m100_phrase_logprob(conn: sqlite3.Connection) -> None:
    """SuperGen scores a phrase, not its request: a sample's `logprob` is the sum over the tokens that
    spelled the phrase, and `logprob_tokens` how many tokens that is. NULL (older rows, a phrase the
    writer could not find in the reply, a backend without per-token log-probabilities): `logprob` is
    the request's, to be divided by `completion_tokens` as before. `completion_tokens` keeps meaning
    the request's answer length."""
    _script(conn,
        """
        ALTER TABLE samples ADD COLUMN logprob_tokens INTEGER;
        """
    )


@migration
def m105_judge_verdicts(conn: sqlite3.Connection) -> None:
    """The LLM judge's verdicts on curation's label-check flags, kept so that a cancelled or crashed
    judged curation (hours on a CPU for a whole classification) resumes without asking the LLM again.
    `key` is a digest of everything a verdict depends on: the judge model's sha256, how it asks, the
    text and each candidate's card (code, title, note lines), so an edited note is asked afresh."""
    _script(conn,
        """
        CREATE TABLE judge_verdicts (
            key TEXT PRIMARY KEY,
            judge_model_sha256 TEXT NOT NULL,
            verdict TEXT NOT NULL,                   -- JSON: engine.llm.judge.JudgeVerdict.to_json
            created TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
        ) WITHOUT ROWID;
        """
    )
