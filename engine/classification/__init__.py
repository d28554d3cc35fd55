"""Classifications: importers for official files and generic CSV/JSON, validation, and queries."""

from engine.classification.model import (
    Code,
    ImportResult,
    Link,
    ParsedClassification,
    RawCode,
    ancestors,
    children,
    get_code,
    import_parsed,
    leaf_codes,
    leaf_codes_under,
    level_names,
    links_from,
    links_to,
    search_codes,
    siblings,
)
from engine.classification.builtin import BUILTINS, import_builtin, parse_builtin
from engine.classification.generic import ColumnMapping, parse_generic
from engine.classification.nace import parse_nace_ramon
from engine.classification.naics import parse_naics

__all__ = [
    "BUILTINS", "Code", "ColumnMapping", "ImportResult", "Link", "ParsedClassification", "RawCode",
    "ancestors", "children", "get_code", "import_builtin", "import_parsed", "leaf_codes", "leaf_codes_under", "level_names",
    "links_from", "links_to", "parse_builtin", "parse_generic", "parse_nace_ramon", "parse_naics",
    "search_codes", "siblings",
]
