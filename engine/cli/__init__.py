"""The `statcoder` command: parse, call the engine, print. Expected errors become one line, exit 1."""

from __future__ import annotations

import errno
import sqlite3
import sys

import click

from engine import __version__
from engine.atomic import os_error_message
from engine.errors import StatcoderError
from engine.store.project import describe_db_error
from engine.cli.common import cli, error_line

# Each stage registers its commands on `cli` when its module is imported.
from engine.cli import project as _project  # noqa: E402,F401
from engine.cli import classification as _classification  # noqa: E402,F401
from engine.cli import realdata as _realdata  # noqa: E402,F401
from engine.cli import pipeline as _pipeline  # noqa: E402,F401
from engine.cli import llm as _llm  # noqa: E402,F401
from engine.cli import generate as _generate  # noqa: E402,F401
from engine.cli import curate as _curate  # noqa: E402,F401
from engine.cli import coders as _coders  # noqa: E402,F401
from engine.cli import evaluate as _evaluate  # noqa: E402,F401
from engine.cli import coding as _coding  # noqa: E402,F401
from engine.cli import embed as _embed  # noqa: E402,F401
from engine.cli import aliases as _aliases  # noqa: E402,F401
from engine.cli import judge as _judge  # noqa: E402,F401


def main(argv: list[str] | None = None) -> int:
    """Entry point; also used by the bundled app and the child-process trainer."""
    try:
        code = cli.main(args=argv, prog_name="statcoder", standalone_mode=False)
        if isinstance(code, int) and not isinstance(code, bool):
            return code   # ctx.exit(n) from a command, e.g. `check` finding a problem
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except StatcoderError as exc:
        click.echo(f"Error: {error_line(exc)}", err=True)
        return 1
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        return 130
    except sqlite3.DatabaseError as exc:
        # A write to a read-only, full or damaged project file: the file's state, said in one line.
        message = describe_db_error(exc)
        if message is None:
            raise
        click.echo(f"Error: {message}", err=True)
        return 1
    except OSError as exc:
        # Disk full or no permission outside the project (an output, a model file): one line too.
        if exc.errno not in (errno.ENOSPC, errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOENT):
            raise
        if exc.errno == errno.ENOENT:
            click.echo(f"Error: file not found: {exc.filename}", err=True)
        else:
            click.echo(f"Error: {os_error_message(exc, exc.filename or 'a file')}", err=True)
        return 1
    return 0


def run() -> None:  # pragma: no cover - console script shim
    sys.exit(main())


__all__ = ["cli", "main", "__version__"]
