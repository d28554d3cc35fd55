"""Safe output files: every file statcoder writes for a user goes through here.

Two promises, kept in one place so that every command keeps them the same way:

* An output path never destroys the project: the project file, its SQLite side files (-wal, -shm,
  -journal), anything inside its models folder and the app's model folder are refused, as is the
  input file a command is reading from.
* An output file is never half-written: it is written to a temporary file in the same folder,
  flushed to disk, then renamed over the target (a rename is atomic on one file system). A crash,
  a full disk or a cancel leaves either the old file or the new one, and no temporary file behind.

Ordinary mistakes (a missing folder, a full disk, no permission) become a `StatcoderError` with the
path and the reason, not a traceback.
"""

from __future__ import annotations

import errno
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

from engine.errors import StatcoderError

SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


class OutputPathError(StatcoderError):
    """An output path that would overwrite the project, its models or the input."""


def project_models_folder(project_path: Path) -> Path:
    """`<project>.models/` beside the project file (the layout engine.coders uses)."""
    return project_path.parent / f"{project_path.stem}.models"


def _project_path(project: object | None) -> Path | None:
    if project is None:
        return None
    path = getattr(project, "path", project)
    return Path(path).expanduser().resolve()


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
        return True
    except ValueError:
        return False


def _same_file(a: Path, b: Path) -> bool:
    if a == b:
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def protected_paths(project: object | None) -> tuple[list[Path], list[Path]]:
    """(files, folders) an output must never replace or land in, for a project (a Project or a path)."""
    files: list[Path] = []
    folders: list[Path] = []
    project_path = _project_path(project)
    if project_path is not None:
        files.append(project_path)
        files += [project_path.with_name(project_path.name + s) for s in SQLITE_SIDE_FILES]
        folders.append(project_models_folder(project_path).resolve())
    try:
        from engine.paths import data_dir

        folders.append((data_dir() / "models").resolve())
    except OSError:
        pass
    return files, folders


def check_output_path(path: str | Path, *, project: object | None = None,
                      inputs: tuple[str | Path, ...] = (), folder: bool = False) -> Path:
    """The resolved output path, or OutputPathError if writing there could destroy something.

    `folder=True` checks an output folder (a report): it may not be or hold the project's files.
    """
    target = Path(path).expanduser().resolve()
    files, folders = protected_paths(project)
    project_path = _project_path(project)
    for protected in files:
        if _same_file(target, protected):
            what = "the project file" if protected == project_path else f"the project's database file {protected.name}"
            raise OutputPathError(f"refusing to write to {target}: it is {what}; choose another output path")
    for protected in folders:
        if _inside(target, protected):
            raise OutputPathError(f"refusing to write to {target}: it is inside the models folder {protected}; "
                                  "choose another output path")
    if folder and target.is_file():
        raise OutputPathError(f"refusing to write a report folder at {target}: a file is there")
    for source in inputs:
        if _same_file(target, Path(source).expanduser().resolve()):
            raise OutputPathError(f"refusing to write to {target}: it is the input file; choose another output path")
    return target


def _folder_error(target: Path) -> StatcoderError | None:
    parent = target.parent
    if not parent.exists():
        return StatcoderError(f"cannot write {target}: the folder {parent} does not exist; create it first")
    if not parent.is_dir():
        return StatcoderError(f"cannot write {target}: {parent} is not a folder")
    return None


def os_error_message(exc: OSError, target: Path | str) -> str:
    """A user-facing reason for an OSError while writing `target`."""
    if exc.errno == errno.ENOSPC:
        reason = "the disk is full"
    elif exc.errno in (errno.EACCES, errno.EPERM):
        reason = "permission denied"
    elif exc.errno == errno.EROFS:
        reason = "the file system is read-only"
    elif exc.errno == getattr(errno, "EDQUOT", None):
        reason = "the disk quota is exceeded"
    else:
        reason = exc.strerror or str(exc)
    return f"cannot write {target}: {reason}"


@contextmanager
def atomic_path(path: str | Path, *, project: object | None = None,
                inputs: tuple[str | Path, ...] = ()) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is fsynced and renamed over `path`.

    For writers that want a path (matplotlib, fastText). On any error the temporary file is removed
    and `path` is untouched.
    """
    target = check_output_path(path, project=project, inputs=inputs)
    problem = _folder_error(target)
    if problem is not None:
        raise problem
    try:
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    except OSError as exc:
        raise StatcoderError(os_error_message(exc, target)) from exc
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        _keep_mode(target, tmp)
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StatcoderError(os_error_message(exc, target)) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_folder(target.parent)


def _keep_mode(target: Path, tmp: Path) -> None:
    """mkstemp makes 0600 files; give the output the mode a plain open() would (or the old file's)."""
    try:
        mode = target.stat().st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    os.chmod(tmp, mode)


def _fsync_folder(folder: Path) -> None:
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_write(path: str | Path, *, project: object | None = None, inputs: tuple[str | Path, ...] = (),
                 binary: bool = False, encoding: str = "utf-8", newline: str | None = None) -> Iterator[IO]:
    """Open a temporary file for writing; it replaces `path` only when the block ends without error."""
    with atomic_path(path, project=project, inputs=inputs) as tmp:
        if binary:
            with open(tmp, "wb") as handle:
                yield handle
        else:
            with open(tmp, "w", encoding=encoding, newline=newline) as handle:
                yield handle


def write_text(path: str | Path, text: str, *, project: object | None = None, encoding: str = "utf-8") -> Path:
    """Write a whole text file atomically; returns the resolved path."""
    with atomic_write(path, project=project, encoding=encoding) as handle:
        handle.write(text)
    return Path(path).expanduser().resolve()


class AtomicFiles:
    """Several output files that appear together or not at all (a report: its page and its charts).

    `path(target)` gives a temporary path beside each target; when the `with` block ends without an
    error, every file is fsynced and renamed over its target; on an error every temporary is removed
    and no target is touched."""

    def __init__(self, *, project: object | None = None):
        self.project = project
        self._pending: list[tuple[Path, Path]] = []

    def path(self, target: str | Path) -> Path:
        resolved = check_output_path(target, project=self.project)
        problem = _folder_error(resolved)
        if problem is not None:
            raise problem
        try:
            fd, name = tempfile.mkstemp(prefix=f".{resolved.name}.", suffix=".part", dir=resolved.parent)
        except OSError as exc:
            raise StatcoderError(os_error_message(exc, resolved)) from exc
        os.close(fd)
        self._pending.append((Path(name), resolved))
        return Path(name)

    def __enter__(self) -> "AtomicFiles":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            for tmp, _ in self._pending:
                tmp.unlink(missing_ok=True)
            return
        try:
            for tmp, target in self._pending:
                with open(tmp, "rb+") as handle:
                    os.fsync(handle.fileno())
                _keep_mode(target, tmp)
            for tmp, target in self._pending:
                os.replace(tmp, target)
        except OSError as error:
            for tmp, _ in self._pending:
                tmp.unlink(missing_ok=True)
            raise StatcoderError(os_error_message(error, self._pending[0][1].parent)) from error
        if self._pending:
            _fsync_folder(self._pending[0][1].parent)


def prepare_output_folder(folder: str | Path, *, project: object | None = None) -> Path:
    """An output folder (a report) that may not be, or sit inside, a protected place; created if missing."""
    target = check_output_path(folder, project=project, folder=True)
    project_path = _project_path(project)
    if project_path is not None and target == project_path:
        raise OutputPathError(f"refusing to write a report folder at {target}: it is the project file")
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StatcoderError(os_error_message(exc, target)) from exc
    return target


# Spreadsheet formula injection: a cell that starts with one of these is run as a formula by Excel,
# LibreOffice and Sheets when a CSV is opened. A leading apostrophe makes it plain text.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> object:
    """A CSV cell that a spreadsheet shows as text: a leading = + - @ tab or CR gets a ' in front.

    Numbers are left alone (a negative number is not a formula)."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        try:
            float(value)
            return value
        except ValueError:
            return "'" + value
    return value
