"""The desktop's layout (issue 11): shared widgets live in desktop/widgets/, pages import no other page's
widgets in a cycle, and pages call engine functions, never SQL."""

from __future__ import annotations

import ast
from pathlib import Path

DESKTOP = Path(__file__).resolve().parents[2] / "desktop"


def imported_modules(path: Path) -> set[str]:
    """Modules a file imports, as dotted names relative to the desktop package (e.g. 'pages.code')."""
    package = path.parent.relative_to(DESKTOP).parts
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = list(package[: len(package) - (node.level - 1)]) if node.level > 1 else list(package)
            target = ".".join(base + ([node.module] if node.module else []))
            found.add(target)
            found.update(f"{target}.{alias.name}" if target else alias.name for alias in node.names)
    return found


def test_the_coding_panel_and_file_chooser_are_shared_widgets():
    batch = imported_modules(DESKTOP / "pages" / "batch.py")
    code = imported_modules(DESKTOP / "pages" / "code.py")
    assert "widgets.coding_panel" in batch and "widgets.coding_panel" in code
    assert "widgets.file_chooser" in batch
    assert "widgets.file_chooser" in imported_modules(DESKTOP / "pages" / "imports.py")
    assert not any(m.startswith("pages.code") for m in batch), "batch.py imports the Code page: a cycle"


def test_no_import_cycle_between_desktop_modules():
    modules = {str(p.relative_to(DESKTOP).with_suffix("")).replace("/", "."): p for p in DESKTOP.rglob("*.py")}
    graph = {name: {m for m in imported_modules(path) if m in modules and m != name} for name, path in modules.items()}

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph[start]:
            if nxt == goal or (nxt not in seen and (seen.add(nxt) or reaches(nxt, goal, seen))):
                return True
        return False

    cycles = [name for name in graph if not name.endswith("__init__") and reaches(name, name, set())]
    assert cycles == []


def test_pages_and_widgets_run_no_sql():
    offenders = []
    for folder in ("pages", "widgets"):
        for path in (DESKTOP / folder).glob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Attribute) and node.attr in ("execute", "executemany", "conn"):
                    offenders.append(f"{path.name}:{node.lineno} .{node.attr}")
    assert offenders == []


def _strings(node: ast.AST) -> list[str]:
    """String constants under a node, docstrings left out (they are for developers)."""
    docstrings = set()
    for n in ast.walk(node):
        if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and n.body:
            first = n.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    return [n.value for n in ast.walk(node)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings]


# An instruction to type a command or an option: "run `statcoder …`", "add one with `statcoder …`", "--flag".
COMMAND = __import__("re").compile(r"\b(run|use|with|try|see)\s+`?statcoder\s|(^|[\s(;`])--[a-z]", flags=2)


def test_no_gui_message_tells_the_user_to_run_a_command():
    """Issue 15, item 3: the GUI names its own fields and pages; engine errors carry a Hint each front end
    phrases (engine.cli.common.CLI_HINTS, desktop.messages.GUI_HINTS) instead of a CLI flag."""
    offenders = []
    for path in DESKTOP.rglob("*.py"):
        if path.name in ("screenshots.py", "app.py"):   # developer tools with their own command lines
            continue
        for text in _strings(ast.parse(path.read_text(encoding="utf-8"))):
            if COMMAND.search(text) and not text.startswith(("Run", "\n")):
                offenders.append(f"desktop/{path.relative_to(DESKTOP)}: {text[:70]!r}")
    engine = DESKTOP.parent / "engine"
    for path in engine.rglob("*.py"):
        if "cli" in path.relative_to(engine).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Raise) and node.exc is not None:
                offenders += [f"engine/{path.relative_to(engine)}: {t[:70]!r}" for t in _strings(node.exc)
                              if COMMAND.search(t)]
    assert offenders == []


def test_engine_hints_are_phrased_by_both_front_ends():
    from desktop.messages import GUI_HINTS, describe
    from engine.cli.common import CLI_HINTS, error_line
    from engine.errors import ModelError, with_hint

    assert set(GUI_HINTS) == set(CLI_HINTS)
    error = with_hint(ModelError("no LLM is registered to generate with"), "add_llm")
    level, message, _ = describe(error)
    assert "LLMs page" in message and "statcoder" not in message
    assert "statcoder llm add" in error_line(error)


def test_the_readme_lists_the_coding_keys_from_their_one_definition():
    from desktop.keys import keys_markdown

    readme = (DESKTOP.parent / "README.md").read_text(encoding="utf-8")
    assert keys_markdown() in readme
