"""The classifications shipped in assets/: one command away for a new user."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from engine.errors import StatcoderError
from engine.paths import assets_dir
from engine.store.project import Project
from engine.classification.model import ImportResult, ParsedClassification, import_parsed
from engine.classification.nace import parse_nace_ramon
from engine.classification.naics import parse_naics


@dataclass(frozen=True)
class Builtin:
    name: str
    title: str
    parse: Callable[[], ParsedClassification]


def _nace() -> ParsedClassification:
    return parse_nace_ramon(assets_dir() / "classifications" / "nace-rev2" / "NACE_REV2_20221103_144244.csv")


def _naics() -> ParsedClassification:
    base = assets_dir() / "classifications" / "naics-2017"
    return parse_naics(base / "2017_NAICS_Descriptions.csv", base / "2017_NAICS_Cross_References.csv")


BUILTINS: dict[str, Builtin] = {
    "nace2": Builtin("nace2", "NACE Rev. 2 (Eurostat), with explanatory notes", _nace),
    "naics2017": Builtin("naics2017", "NAICS 2017 (U.S. Census Bureau), with cross-references", _naics),
}


def parse_builtin(name: str) -> ParsedClassification:
    if name not in BUILTINS:
        raise StatcoderError(f"no built-in classification '{name}'; choose one of: {', '.join(BUILTINS)}")
    return BUILTINS[name].parse()


def import_builtin(project: Project, name: str) -> ImportResult:
    return import_parsed(project, parse_builtin(name))
