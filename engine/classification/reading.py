"""Strict file reading for importers: decode errors and CSV damage become located problems."""

from __future__ import annotations

import csv
import io
import itertools
import json
from dataclasses import dataclass
from collections import Counter
from pathlib import Path
from typing import Any

from engine.errors import ClassificationError, Problem, ValidationError, with_hint


# A header wider than any spreadsheet can hold (Excel: 16,384 columns) is not a table a person made;
# refusing it before parsing keeps a damaged or hostile file from tying up the importer.
MAX_COLUMNS = 16_384
# The largest cell any importer accepts: the csv module's own default limit, applied to JSON fields too.
MAX_FIELD_CHARS = csv.field_size_limit()


def record_of_offset(text: str) -> int:
    """The 1-based CSV record (row 1 = the header) that the end of `text` falls in.

    A quoted field may span lines, so the physical line number is not the row a user sees in a
    spreadsheet; counting records with the csv module gives that row."""
    count = 0
    # The character at the offset stands in as "x": it starts a new record after a line end outside
    # quotes, and joins the open field inside them.
    reader = csv.reader(io.StringIO(text + "x", newline=""))
    try:
        for _ in reader:
            count += 1
    except csv.Error:
        # Damage before the offset: fall back to the physical line.
        return text.count("\n") + 1
    return max(1, count)


def encoding_hint(error: ValidationError, encoding: str) -> ValidationError:
    """A file that is not valid UTF-8 is most often Windows-1252 (what Excel writes on Windows in Western
    Europe): say so as a hint, which the CLI phrases as its --encoding option and the GUI as its field."""
    if encoding.replace("-", "").replace("_", "").lower() in ("utf8", "utf8sig"):
        with_hint(error, "encoding", "cp1252")
    return error


def read_text(path: Path, encoding: str, error_cls: type[ValidationError] = ClassificationError,
              *, csv_records: bool = False) -> str:
    """The decoded file without a BOM. A decode error names the CSV record (`csv_records`) or the line."""
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
        where = f"line {line}"
        row = line
        if csv_records:
            prefix = data[:exc.start].decode(encoding, errors="replace").lstrip("\ufeff")
            row = record_of_offset(prefix)
            if row != line:
                where = f"row {row} (line {line} of the file)"
            else:
                where = f"row {row}"
        error = error_cls([Problem(
            str(path), row, f"undecodable byte 0x{data[exc.start]:02x} at {where}: the file is not valid {encoding}")])
        raise encoding_hint(error, encoding) from None
    except LookupError:
        raise error_cls([Problem(str(path), None, f"unknown encoding '{encoding}'")]) from None
    text = text.lstrip("\ufeff")
    if "\x00" in text:
        offset = text.index("\x00")
        row = record_of_offset(text[:offset]) if csv_records else text.count("\n", 0, offset) + 1
        raise error_cls([Problem(str(path), row, "the file holds a NUL byte (\\0), which no text has: it is a "
                                 "binary file or another encoding (UTF-16?); save it as UTF-8 text")])
    return text


def check_header(header_line: str, path: Path, delimiter: str,
                 error_cls: type[ValidationError] = ClassificationError) -> None:
    """Refuse a header with more than MAX_COLUMNS columns, before any parsing."""
    if header_line.count(delimiter) + 1 > MAX_COLUMNS:
        raise error_cls([Problem(str(path), 1, f"the header has {header_line.count(delimiter) + 1:,} columns; "
                                 f"at most {MAX_COLUMNS:,} are accepted (is this the right file and delimiter?)")])


def shown_columns(header: list[str], limit: int = 30) -> str:
    """The header's columns for a message, cut short for a wide file."""
    shown = ", ".join(header[:limit])
    return shown + (f", ... ({len(header):,} columns)" if len(header) > limit else "")


def detect_delimiter(text: str) -> str:
    """The most frequent of , ; tab | in the header line: a rule a user can predict, where csv.Sniffer
    guesses from the first rows of data and can be misled by quoted notes."""
    header_line = text.split("\n", 1)[0]
    return max(",;\t|", key=header_line.count) if any(c in header_line for c in ",;\t|") else ","


def read_csv(path: Path, encoding: str, required: list[str],
              error_cls: type[ValidationError] = ClassificationError,
              delimiter: str | None = None) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """Rows as (row number, {column: value}); row 1 is the header, so data starts at row 2."""
    text = read_text(path, encoding, error_cls, csv_records=True)
    if not text.strip():
        raise error_cls([Problem(str(path), None, "the file is empty")])
    if delimiter is None:
        delimiter = detect_delimiter(text)
    check_header(text.split("\n", 1)[0], path, delimiter, error_cls)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = [h.strip() for h in next(reader)]
    except csv.Error as exc:
        raise error_cls([Problem(str(path), 1, f"malformed CSV header ({exc})")]) from None
    present = set(header)
    missing = [c for c in required if c not in present]
    if missing:
        raise error_cls([Problem(str(path), 1, f"column '{c}' not found; the header has: {shown_columns(header)}", c)
                         for c in missing])
    # Counter, not header.count() per column: that was quadratic in the column count.
    dupes = sorted(h for h, n in Counter(header).items() if h and n > 1)
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
        record = {str(k): "" if v is None else v for k, v in item.items()}
        for key, value in record.items():
            if isinstance(value, str) and len(value) > MAX_FIELD_CHARS:
                problems.append(Problem(str(path), i, f"field '{key}' holds {len(value):,} characters; at most "
                                        f"{MAX_FIELD_CHARS:,} are accepted", key))
            elif isinstance(value, str) and "\x00" in value:
                problems.append(Problem(str(path), i, f"field '{key}' holds a NUL character (\\u0000)", key))
        records.append((i, record))
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
    text = read_text(path, encoding, ClassificationError, csv_records=True)
    if not text.strip():
        raise ClassificationError([Problem(str(path), None, "the file is empty")])
    delimiter = detect_delimiter(text)
    check_header(text.split("\n", 1)[0], path, delimiter, ClassificationError)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = [h.strip() for h in next(reader)]
        rows = [dict(zip(header, values)) for values in itertools.islice(reader, limit)]
        total = len(rows) + sum(1 for _ in reader)
    except csv.Error as exc:
        raise ClassificationError([Problem(str(path), None, f"malformed CSV ({exc})")]) from None
    return FilePreview([h for h in header if h], rows, total)


class CsvStream:
    """A CSV file read row by row, with the importers' rules, for files too big to hold in memory.

    The same as `read_csv` for a user: a BOM is dropped, the delimiter is the most frequent of
    , ; tab | in the header, an absurd header is refused before parsing, and a decode error, a NUL
    byte or CSV damage names the row (the record, as a spreadsheet counts it) and stops the read.
    Use as a context manager; `header` is read on entry, iterate for (row number, cells).
    """

    HEADER_BYTES = 8 << 20

    def __init__(self, path: str | Path, encoding: str = "utf-8",
                 error_cls: type[ValidationError] = ValidationError, delimiter: str | None = None):
        self.path = Path(path)
        self.encoding = "utf-8-sig" if encoding.replace("-", "").replace("_", "").lower() in ("utf8", "utf8sig") \
            else encoding
        self.shown_encoding = encoding
        self.error_cls = error_cls
        self.delimiter = delimiter
        self.header: list[str] = []
        self.records = 0          # records handed out so far, the header included
        self._handle = None

    def _problem(self, row: int | None, text: str) -> ValidationError:
        return self.error_cls([Problem(str(self.path), row, text)])

    def __enter__(self) -> "CsvStream":
        import codecs

        try:
            self._decoder = codecs.getincrementaldecoder(self.encoding)()
        except LookupError:
            raise self._problem(None, f"unknown encoding '{self.shown_encoding}'") from None
        try:
            self._handle = open(self.path, "rb")
        except FileNotFoundError:
            raise self._problem(None, "file not found") from None
        except OSError as exc:
            raise self._problem(None, f"cannot read file ({exc.strerror})") from None
        first = self._handle.readline(self.HEADER_BYTES)
        self._first = first
        if not first.strip():
            self.close()
            raise self._problem(None, "the file is empty")
        header_text = first.decode(self.encoding, errors="replace").lstrip("\ufeff")
        delimiter = self.delimiter or detect_delimiter(header_text)
        try:
            check_header(header_text, self.path, delimiter, self.error_cls)
            if not first.endswith(b"\n") and self._handle.read(1):
                raise self._problem(1, f"the header line is longer than {self.HEADER_BYTES >> 20} MiB")
        except BaseException:
            self.close()
            raise
        self.delimiter = delimiter
        self._reader = csv.reader(self._lines(), delimiter=delimiter, strict=True)
        try:
            self.header = [h.strip() for h in self._next()]
        except StopIteration:
            self.close()
            raise self._problem(None, "the file is empty") from None
        except BaseException:
            self.close()
            raise
        return self

    def _lines(self):
        yield self._decode(self._first, True, 1)
        physical = 1
        for raw in self._handle:
            physical += 1
            yield self._decode(raw, False, physical)
        tail = self._decode(b"", False, physical, final=True)
        if tail:
            yield tail

    def _decode(self, raw: bytes, first: bool, physical: int, *, final: bool = False) -> str:
        try:
            text = self._decoder.decode(raw, final=final)
        except UnicodeDecodeError as exc:
            row = self.records + 1
            where = f"row {row}" + (f" (line {physical} of the file)" if physical != row else "")
            bad = exc.object[exc.start] if exc.start < len(exc.object) else 0
            raise encoding_hint(self._problem(row, f"undecodable byte 0x{bad:02x} at {where}: the file is not "
                                              f"valid {self.shown_encoding}"), self.encoding) from None
        if first:
            text = text.lstrip("\ufeff")
        if "\x00" in text:
            raise self._problem(self.records + 1, "a NUL byte (\\0), which no text has: the file is binary or "
                                "another encoding (UTF-16?); save it as UTF-8 text")
        return text

    def _next(self) -> list[str]:
        try:
            values = next(self._reader)
        except csv.Error as exc:
            raise self._problem(self.records + 1, f"malformed CSV ({exc})") from None
        self.records += 1
        return values

    def __iter__(self):
        while True:
            try:
                values = self._next()
            except StopIteration:
                return
            yield self.records, values

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __exit__(self, *exc: object) -> None:
        self.close()
