"""Strict file reading for importers: decode errors and CSV damage become located problems."""

from __future__ import annotations

import csv
import io
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import ClassificationError, Problem, ValidationError


def read_text(path: Path, encoding: str, error_cls: type[ValidationError] = ClassificationError) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise error_cls([Problem(str(path), None, "file not found")]) from None
    except OSError as exc:
        raise error_cls([Problem(str(path), None, f"cannot read file ({exc.strerror})")]) from None
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise error_cls([Problem(
            str(path), line,
            f"undecodable byte 0x{data[exc.start]:02x} at line {line}: the file is not valid {encoding}"
            + ("; try --encoding cp1252" if encoding.replace("-", "").lower() == "utf8" else ""))]) from None
    except LookupError:
        raise error_cls([Problem(str(path), None, f"unknown encoding '{encoding}'")]) from None
    return text.lstrip("\ufeff")


def detect_delimiter(text: str) -> str:
    """The most frequent of , ; tab | in the header line: a rule a user can predict, where csv.Sniffer
    guesses from the first rows of data and can be misled by quoted notes."""
    header_line = text.split("\n", 1)[0]
    return max(",;\t|", key=header_line.count) if any(c in header_line for c in ",;\t|") else ","


def read_csv(path: Path, encoding: str, required: list[str],
              error_cls: type[ValidationError] = ClassificationError,
              delimiter: str | None = None) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """Rows as (row number, {column: value}); row 1 is the header, so data starts at row 2."""
    text = read_text(path, encoding, error_cls)
    if not text.strip():
        raise error_cls([Problem(str(path), None, "the file is empty")])
    if delimiter is None:
        delimiter = detect_delimiter(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = [h.strip() for h in next(reader)]
    except csv.Error as exc:
        raise error_cls([Problem(str(path), 1, f"malformed CSV header ({exc})")]) from None
    missing = [c for c in required if c not in header]
    if missing:
        raise error_cls([Problem(str(path), 1, f"column '{c}' not found; the header has: {', '.join(header)}", c)
                         for c in missing])
    dupes = sorted({h for h in header if h and header.count(h) > 1})
    if dupes:
        raise error_cls([Problem(str(path), 1, f"column '{d}' appears more than once", d) for d in dupes])
    rows: list[tuple[int, dict[str, str]]] = []
    problems: list[Problem] = []
    index = 1
    while True:
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            problems.append(Problem(str(path), index + 1, f"malformed CSV ({exc})"))
            break
        index += 1
        if not any(v.strip() for v in values):
            continue
        if len(values) > len(header) and any(v.strip() for v in values[len(header):]):
            problems.append(Problem(str(path), index, f"{len(values)} cells but the header has {len(header)}"))
            continue
        values = values + [""] * (len(header) - len(values))
        rows.append((index, dict(zip(header, values))))
    if problems:
        raise error_cls(problems)
    return header, rows


def read_json_records(path: Path, encoding: str,
                      error_cls: type[ValidationError] = ClassificationError) -> list[tuple[int, dict[str, Any]]]:
    """Records from a JSON list of objects, or an object with a list under "codes"; row = 1-based index."""
    text = read_text(path, encoding, error_cls)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise error_cls([Problem(str(path), exc.lineno, f"invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})")]) from None
    if isinstance(data, dict):
        data = data.get("codes", data.get("items"))
    if not isinstance(data, list):
        raise error_cls([Problem(str(path), None, "expected a JSON list of objects, or an object with a 'codes' list")])
    records: list[tuple[int, dict[str, Any]]] = []
    problems: list[Problem] = []
    for i, item in enumerate(data, start=1):
        if not isinstance(item, dict):
            problems.append(Problem(str(path), i, f"item {i} is a {type(item).__name__}, not an object"))
            continue
        records.append((i, {str(k): "" if v is None else v for k, v in item.items()}))
    if problems:
        raise error_cls(problems)
    return records


@dataclass
class FilePreview:
    """The columns of a CSV or JSON file and its first rows, read before any mapping is chosen."""

    columns: list[str]
    rows: list[dict[str, str]]
    total_rows: int


def preview_file(path: str | Path, *, encoding: str = "utf-8", limit: int = 20) -> FilePreview:
    """Read a classification or coded-text file for a column-mapping preview; damage is a located error."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        records = read_json_records(path, encoding, ClassificationError)
        columns: list[str] = []
        for _, record in records:
            columns.extend(k for k in record if k not in columns)
        rows = [{k: str(v) for k, v in record.items()} for _, record in records[:limit]]
        return FilePreview(columns, rows, len(records))
    # Only the first rows are parsed into a table (the GUI calls this on its own thread); the rest are
    # counted with the C csv reader. The importer validates every row before anything is written.
    text = read_text(path, encoding, ClassificationError)
    if not text.strip():
        raise ClassificationError([Problem(str(path), None, "the file is empty")])
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=detect_delimiter(text))
    try:
        header = [h.strip() for h in next(reader)]
        rows = [dict(zip(header, values)) for values in itertools.islice(reader, limit)]
        total = len(rows) + sum(1 for _ in reader)
    except csv.Error as exc:
        raise ClassificationError([Problem(str(path), None, f"malformed CSV ({exc})")]) from None
    return FilePreview([h for h in header if h], rows, total)
