"""`python -m engine` runs the CLI (also how the bundle and child processes call it)."""

from engine.cli import run

run()
