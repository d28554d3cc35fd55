"""Commands for classifications: import (built-in, official formats, generic), list, search, show."""

from __future__ import annotations

from pathlib import Path

import click

from engine.classification import (
    BUILTINS, ColumnMapping, ImportResult, ancestors, children, get_code, import_builtin, import_parsed,
    level_names, links_from, links_to, parse_generic, parse_nace_ramon, parse_naics, search_codes, siblings,
)
from engine.classification.model import validate
from engine.errors import StatcoderError
from engine.cli.common import cli, echo_json, json_option, open_project, project_option


def print_import_result(result: ImportResult) -> None:
    levels = " / ".join(str(n) for n in result.per_level.values())
    click.echo(f"imported {result.name}: {result.codes} codes ({result.leaf_codes} leaf codes), "
               f"per level {levels}, {result.links} links from the excludes")
    if not result.links:
        click.echo("warning: no links were found in the excludes; if the notes name other codes another way, "
                   "re-import into a new project with --excludes-pattern")
    for warning in result.warnings:
        click.echo(f"warning: {warning}")
    for item in result.unresolved_links[:10]:
        click.echo(f"  unresolved: {item}")
    if len(result.unresolved_links) > 10:
        click.echo(f"  ... and {len(result.unresolved_links) - 10} more")


@cli.group("classification")
def classification() -> None:
    """Import a classification into a project."""


@classification.command("builtins")
def builtins() -> None:
    """List the classifications shipped with statcoder."""
    for item in BUILTINS.values():
        click.echo(f"{item.name:<10} {item.title}")


@classification.command("import")
@project_option
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@click.option("--builtin", help="A built-in classification: " + ", ".join(BUILTINS))
@click.option("--format", "fmt", type=click.Choice(["generic", "nace-ramon", "naics"]), default="generic",
              show_default=True, help="Layout of FILE.")
@click.option("--xref", type=click.Path(dir_okay=False), help="NAICS cross-references CSV (the excludes).")
@click.option("--map", "mapping", multiple=True, metavar="FIELD=COLUMN",
              help="Generic format: which column holds code, title, parent, level, includes, also_includes, "
                   "excludes, notes. Repeat for each field.")
@click.option("--encoding", default=None, help="File encoding (utf-8; NAICS files are cp1252).")
@click.option("--name", help="A name for the classification.")
@click.option("--lenient-links", is_flag=True, help="Report links to unknown codes instead of refusing the file.")
@click.option("--excludes-pattern", metavar="REGEX",
              help="Generic files: a regular expression for references to other codes the built-in forms miss "
                   "('see 01.12', '(see 2221)', '→ 2221', 'classified in 2221', ISCO's '- Medical physicist - "
                   "2111'); its group 'code' (or only group) is the code, e.g. '\\[(\\d{4})\\]'.")
@click.option("--activity-titles/--product-titles", "activity_titles", default=None,
              help="Whether the titles lead with the activity ('Wholesale of ...', as NACE and ISIC do) or with the "
                   "product ('... Merchant Wholesalers', as NAICS does). With activity titles, an ensemble coder "
                   "ranks toward the codes whose titles lead with the activity a text names. Default: NACE's "
                   "format has activity titles, the others do not.")
@click.option("--check", "check_only", is_flag=True,
              help="Read and validate the file and say how many codes and links it has; write nothing.")
def import_classification(project_path: str, file: str | None, builtin: str | None, fmt: str, xref: str | None,
                          mapping: tuple[str, ...], encoding: str | None, name: str | None,
                          lenient_links: bool, excludes_pattern: str | None, activity_titles: bool | None,
                          check_only: bool) -> None:
    """Import a classification from FILE, or a built-in one with --builtin. Validates before writing."""
    project = open_project(project_path, write=True)
    if bool(file) == bool(builtin):
        raise click.UsageError("give either FILE or --builtin NAME")
    if builtin:
        if activity_titles is not None:
            raise click.UsageError("--activity-titles/--product-titles apply to a FILE; a built-in classification "
                                   "knows its titles")
        print_import_result(import_builtin(project, builtin))
        return
    path = Path(file)  # type: ignore[arg-type]
    if excludes_pattern and fmt != "generic":
        raise click.UsageError("--excludes-pattern applies to generic files only")
    if fmt == "nace-ramon":
        parsed = parse_nace_ramon(path, encoding=encoding or "utf-8", **({"name": name} if name else {}))
    elif fmt == "naics":
        parsed = parse_naics(path, xref, encoding=encoding or "cp1252", **({"name": name} if name else {}))
    else:
        try:
            column_mapping = ColumnMapping.from_pairs(list(mapping)) if mapping else ColumnMapping()
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--map") from None
        parsed = parse_generic(path, column_mapping, encoding=encoding or "utf-8", name=name,
                               strict_links=not lenient_links, excludes_pattern=excludes_pattern)
    parsed.activity_titles = activity_titles
    if check_only:
        problems, warnings, links = validate(parsed)
        for problem in problems:
            click.echo(f"problem: {problem}", err=True)
        for warning in warnings:
            click.echo(f"warning: {warning}")
        click.echo(f"{parsed.name}: {len(parsed.codes)} codes, {len(links)} links from the excludes"
                   + (" (none found: if the notes name other codes another way, give --excludes-pattern)"
                      if not links else "") + "; nothing written")
        if problems:
            raise SystemExit(1)
        return
    print_import_result(import_parsed(project, parsed))


@cli.group("codes")
def codes() -> None:
    """Look at the codes of a project's classification."""


@codes.command("show")
@project_option
@click.argument("code")
@json_option
def show(project_path: str, code: str, as_json: bool) -> None:
    """A code with its notes, excludes, links, parents and siblings."""
    project = open_project(project_path)
    item = get_code(project, code)
    names = level_names(project)
    path = ancestors(project, code)
    out = {
        "code": item.code, "title": item.title, "level": item.level,
        "level_name": names[item.level - 1] if 0 < item.level <= len(names) else None,
        "path": [f"{a.code} {a.title}" for a in path],
        "includes": item.includes, "also_includes": item.also_includes, "excludes": item.excludes,
        "notes": item.notes,
        "links_out": [{"text": l.text, "target": l.target} for l in links_from(project, code)],
        "links_in": [{"from": l.code, "text": l.text} for l in links_to(project, code)],
        "children": [c.code for c in children(project, code)],
        "siblings": [f"{s.code} {s.title}" for s in siblings(project, code)],
    }
    if as_json:
        echo_json(out)
        return
    click.echo(f"{item.code}  {item.title}" + (f"  [{out['level_name']}]" if out["level_name"] else ""))
    if path:
        click.echo("  in: " + " > ".join(out["path"]))
    for label, key in (("Includes", "includes"), ("Also includes", "also_includes"), ("Excludes", "excludes"),
                       ("Notes", "notes")):
        if out[key]:
            click.echo(f"\n{label}:\n" + "\n".join("  " + line for line in out[key].splitlines()))
    if out["links_out"]:
        click.echo("\nExcluded here, coded elsewhere:")
        for link in out["links_out"]:
            click.echo(f"  {link['text']}  ->  {link['target']}")
    if out["links_in"]:
        click.echo("\nExcluded elsewhere, coded here:")
        for link in out["links_in"]:
            click.echo(f"  {link['text']}  (from {link['from']})")
    if out["children"]:
        click.echo("\nChildren: " + ", ".join(out["children"]))
    if out["siblings"]:
        click.echo("\nSiblings:\n" + "\n".join("  " + s for s in out["siblings"]))


@codes.command("list")
@project_option
@click.option("--parent", help="Only the children of this code.")
@click.option("--level", type=int, help="Only codes at this level (1 = top).")
@json_option
def list_codes(project_path: str, parent: str | None, level: int | None, as_json: bool) -> None:
    """List codes with their titles."""
    project = open_project(project_path)
    if parent:
        get_code(project, parent)
        rows = [(c.code, c.level, c.title) for c in children(project, parent)]
    else:
        sql = "SELECT code, level, title FROM codes" + (" WHERE level = ?" if level else "") + " ORDER BY ord"
        rows = list(project.conn.execute(sql, (level,) if level else ()))
    if as_json:
        echo_json([{"code": c, "level": lv, "title": t} for c, lv, t in rows])
        return
    for code, lv, title in rows:
        click.echo(f"{'  ' * (lv - 1)}{code:<8} {title}")


@codes.command("search")
@project_option
@click.argument("query")
@click.option("--limit", default=20, show_default=True)
@click.option("--leaves", is_flag=True, help="Only leaf (codable) codes.")
@json_option
def search(project_path: str, query: str, limit: int, leaves: bool, as_json: bool) -> None:
    """Codes whose code, title or notes contain every word of QUERY."""
    found = search_codes(open_project(project_path), query, limit=limit, leaves_only=leaves)
    if as_json:
        echo_json([{"code": c.code, "title": c.title} for c in found])
        return
    if not found:
        raise StatcoderError(f"no code matches '{query}'")
    for item in found:
        click.echo(f"{item.code:<8} {item.title}")
