"""The `statcoder embed` commands: train, cache, text; help for each; errors as one line."""

from __future__ import annotations

import json

from engine.cli import main


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_every_embed_command_has_help(capsys):
    for command in (["embed", "--help"], ["embed", "train", "--help"], ["embed", "ensemble", "--help"],
                    ["embed", "text", "--help"], ["embed", "cache", "--help"]):
        code, out, _ = run(capsys, *command)
        assert code == 0 and "Usage:" in out


def test_train_then_retrain_uses_the_cache(capsys, nace_project):
    path = str(nace_project.path)
    code, out, _ = run(capsys, "embed", "train", "-p", path, "--subset", "10,11", "--mode", "knn", "--json")
    assert code == 0, out
    first = json.loads(out)
    assert first["cache"]["embedded"] > 200 and first["validation"]["top1"] > 0.5
    code, out, _ = run(capsys, "embed", "train", "-p", path, "--subset", "10,11", "--mode", "knn", "--json")
    second = json.loads(out)
    assert second["cache"] == {"texts": first["cache"]["texts"], "hits": first["cache"]["texts"], "embedded": 0}
    code, out, _ = run(capsys, "embed", "cache", "-p", path, "--json")
    assert json.loads(out)["total"] == first["cache"]["texts"]
    code, out, _ = run(capsys, "train", "list", "-p", path, "--json")
    assert [m["kind"] for m in json.loads(out)] == ["embedding", "embedding"]
    code, out, _ = run(capsys, "embed", "cache", "-p", path, "--clear")
    assert code == 0 and f"removed {first['cache']['texts']} cached vectors" in out


def test_text_prints_vectors_and_cosines(capsys, project):
    code, out, _ = run(capsys, "embed", "text", "-p", str(project.path), "bakery", "baking bread", "--json")
    assert code == 0
    vectors = json.loads(out)["vectors"]
    assert len(vectors) == 2 and len(vectors[0]) == 384
    code, out, _ = run(capsys, "embed", "text", "-p", str(project.path), "bakery", "baking bread")
    assert "cosine('bakery', 'baking bread') = 0." in out


def test_a_bad_model_file_is_a_one_line_error(capsys, project, tmp_path):
    bogus = tmp_path / "x.gguf"
    bogus.write_bytes(b"nonsense")
    code, _, err = run(capsys, "embed", "text", "-p", str(project.path), "--model", str(bogus), "bakery")
    assert code == 1 and err.startswith("Error: ") and len(err.strip().splitlines()) == 1
