"""The command tree follows the user's nouns: `statcoder llm`, `statcoder coders train|list|default`;
the previous release's spellings still work, hidden from --help."""

from __future__ import annotations

import json

from engine.cli import main


def _run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_coders_train_every_kind_then_list_and_choose_the_default(nace_project, capsys):
    path = str(nace_project.path)
    code, out, _ = _run(capsys, "coders", "train", "-p", path, "--kind", "fasttext", "--real", "1", "--subset", "11",
                        "--bucket", "20000", "--epoch", "5", "--json")
    fasttext = json.loads(out)
    assert code == 0 and fasttext["kind"] == "fasttext" and fasttext["default"] is True
    code, out, _ = _run(capsys, "coders", "train", "-p", path, "--kind", "knn", "--real", "1", "--subset", "11",
                        "--no-default", "--json")
    knn = json.loads(out)
    assert code == 0 and knn["kind"] == "embedding" and knn["default"] is False and knn["cache"]["texts"] > 0
    code, out, _ = _run(capsys, "coders", "train", "-p", path, "--kind", "lexical", "--real", "1", "--subset", "11",
                        "--no-default", "--json")
    lexical = json.loads(out)
    assert code == 0 and lexical["kind"] == "lexical" and lexical["default"] is False
    code, out, _ = _run(capsys, "coders", "train", "-p", path, "--kind", "ensemble", "--real", "1", "--subset", "11",
                        "--member", str(fasttext["model_id"]), "--member", str(knn["model_id"]), "--no-default",
                        "--json")
    ensemble = json.loads(out)
    assert code == 0 and ensemble["kind"] == "ensemble" and list(ensemble["weights"]) == ["fasttext", "knn"]
    code, out, _ = _run(capsys, "coders", "list", "-p", path, "--json")
    listed = json.loads(out)
    assert [m["kind"] for m in listed] == ["fasttext", "embedding", "lexical", "ensemble"]
    assert [m["default"] for m in listed] == [True, False, False, False]
    assert all(m["codes_trained"] == 7 for m in listed)           # division 11 has 7 classes
    code, out, _ = _run(capsys, "coders", "default", "-p", path, str(ensemble["model_id"]))
    assert code == 0 and f"coder {ensemble['model_id']} now serves" in out
    code, out, _ = _run(capsys, "coders", "list", "-p", path)
    assert out.splitlines()[3].startswith(f"*    {ensemble['model_id']}  ensemble")


def test_an_unknown_subset_code_is_one_clear_error(nace_project, capsys):
    code, _, err = _run(capsys, "coders", "train", "-p", str(nace_project.path), "--real", "1", "--subset", "11,1O")
    assert code == 1 and "unknown code '1O'" in err and nace_project.conn.execute(
        "SELECT COUNT(*) FROM models").fetchone()[0] == 0


def test_old_spellings_still_work_but_are_hidden(nace_project, capsys):
    path = str(nace_project.path)
    code, out, _ = _run(capsys, "--help")
    commands = out.split("Commands:")[1]
    assert code == 0 and " llm " in commands and " coders " in commands
    assert " models " not in commands and " train " not in commands
    code, out, _ = _run(capsys, "train", "run", "-p", path, "--real", "1", "--subset", "11", "--bucket", "20000",
                        "--epoch", "5", "--json")
    assert code == 0 and json.loads(out)["kind"] == "fasttext"
    code, out, _ = _run(capsys, "train", "list", "-p", path)
    assert code == 0 and out.startswith("*    1  fasttext")
    code, llm_out, _ = _run(capsys, "llm", "list", "--json")
    code_old, models_out, _ = _run(capsys, "models", "list", "--json")
    assert code == code_old == 0 and json.loads(llm_out) == json.loads(models_out)
