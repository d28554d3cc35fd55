"""Coverage is explicit (issue 15, item 2): a coder knows its codes, is evaluated on their texts by default,
models are compared on the same texts, and a new coder that does worse on the texts both know does not
replace the serving one."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest

from engine.cli import main
from engine.classification import leaf_codes_under
from engine.coders.coverage import coverage, model_coverage
from engine.coders.data import DataMix
from engine.coders.fasttext.training import DEFAULT_PARAMS, TrainOptions, train_fasttext
from engine.coders.registry import LOADERS, clear_coder_cache, default_model_id, get_model, set_default_model
from engine.text import file_sha256
from engine.evaluate.compare import compare_on_validation, default_scope, serving_after_training, shared_texts
from engine.evaluate.metrics import CodeScore, EvaluationResult, evaluation_texts
from engine.store.project import Project


@pytest.fixture(scope="module")
def trained(_nace_template, tmp_path_factory):
    path = tmp_path_factory.mktemp("coverage") / "coverage.statcoder"
    shutil.copy(_nace_template, path)
    project = Project.open(path)
    codes = leaf_codes_under(project, ["10", "11"])
    params = dataclasses.replace(DEFAULT_PARAMS, bucket=20_000)
    result = train_fasttext(project, DataMix(notes=1, real=1, codes=codes), TrainOptions(params=params, name="10-11"))
    yield project, codes, result
    project.close()
    clear_coder_cache()


def test_a_coder_knows_the_codes_it_was_trained_for(trained):
    project, codes, result = trained
    cover = model_coverage(project, result.model_id)
    assert list(cover.codes) == codes and cover.partial
    assert cover.groups == ("10", "11")
    assert cover.describe() == f"{len(codes)} of the {cover.total:,} codes (10, 11)"
    everything = coverage(project, [c for (c,) in project.conn.execute("SELECT code FROM codes WHERE is_leaf")])
    assert not everything.partial


def test_a_model_without_stored_codes_is_read_from_its_file(trained):
    project, codes, result = trained
    record = get_model(project, result.model_id)
    old = dataclasses.replace(record, data={k: v for k, v in record.data.items() if k != "per_code"})
    from engine.coders.coverage import trained_codes

    assert sorted(trained_codes(project, old)) == sorted(codes)


def test_evaluation_defaults_to_the_texts_of_the_coders_codes(trained, capsys):
    project, codes, result = trained
    scope = default_scope(project, result.model_id)
    assert scope.codes == codes and scope.n_texts == len(evaluation_texts(project, "test", codes))
    assert scope.n_texts < len(evaluation_texts(project, "test"))
    assert main(["evaluate", "-p", str(project.path), "--model", str(result.model_id)]) == 0
    out = capsys.readouterr().out
    assert f"on the {scope.n_texts:,} test texts of the {len(codes)} of the" in out and "(10, 11)" in out
    assert f"{scope.n_texts} texts, top-1" in out
    top1 = float(out.split("top-1 ")[1].split("%")[0])
    assert top1 > 40   # not the few % a 10-11 coder gets on every code's texts
    assert main(["evaluate", "-p", str(project.path), "--all-codes", "--json"]) == 0
    everything = json.loads(capsys.readouterr().out)
    assert everything["n"] == len(evaluation_texts(project, "test")) and everything["top1"] < top1 / 100


def _result(per_code: dict[str, tuple[int, float]]) -> EvaluationResult:
    scores = [CodeScore(c, 0.0, recall, 0.0, support, 0) for c, (support, recall) in per_code.items()]
    n = sum(s for s, _ in per_code.values())
    return EvaluationResult(n, 0.0, 0.0, 0.0, {}, scores, [], [], 0.0, [], [], {}, None)


def test_models_are_compared_on_the_texts_all_were_evaluated_on():
    narrow = _result({"10.71": (10, 0.8), "11.05": (10, 0.6)})
    wide = _result({"10.71": (10, 0.5), "11.05": (10, 0.5), "62.01": (100, 0.9)})
    shared = shared_texts({1: narrow, 2: wide})
    assert shared.differ and (shared.n, shared.codes) == (20, 2)
    assert shared.top1 == {1: pytest.approx(0.7), 2: pytest.approx(0.5)}
    assert not shared_texts({1: narrow, 3: narrow}).differ


class Constant:
    """A coder that always answers 11.05: far worse than the trained one on 10-11's texts (its codes are
    set by the test)."""

    kind = "constant"
    codes: list[str] = []

    def predict(self, text, k=5):
        return [("11.05", 1.0)]

    def predict_many(self, texts, k=5):
        return [[("11.05", 1.0)] for _ in texts]

    @classmethod
    def load(cls, path):
        return cls()


def _register(project, kind, path, codes, set_key):
    validation = {"set": set_key, "n": 10, "top1": 0.99, "top5": 1.0}
    with project.transaction() as conn:
        return conn.execute(
            "INSERT INTO models (name, kind, path, sha256, params, data, validation) VALUES (?, ?, ?, ?, '{}', ?, ?)",
            (kind, kind, str(path), file_sha256(path), json.dumps({"per_code": {c: 1 for c in codes}}),
             json.dumps(validation))).lastrowid


def test_a_worse_new_coder_does_not_replace_the_serving_one(trained, monkeypatch):
    project, codes, result = trained
    wider = leaf_codes_under(project, ["10", "11", "12"])
    monkeypatch.setitem(LOADERS, "constant", f"{__name__}:Constant.load")
    monkeypatch.setattr(Constant, "codes", wider)
    constant_file = result.path.with_name("constant.txt")
    constant_file.write_text("constant\n")
    set_default_model(project, result.model_id)
    new = _register(project, "constant", constant_file, wider, "another-set")
    set_default_model(project, new)   # what the validation-set rule does: the new set has no rival
    comparison = compare_on_validation(project, [new, result.model_id])
    assert comparison.codes == len(codes) and comparison.top1[new] < comparison.top1[result.model_id]
    decision = serving_after_training(project, new, result.model_id)
    assert decision.kept_better and not decision.replaced
    assert default_model_id(project) == result.model_id
    assert f"Model {result.model_id} is still used for coding" in decision.message
    assert f"same {comparison.n:,} validation texts" in decision.message
    # the same coder under another name scores the same, so it may serve
    monkeypatch.setitem(LOADERS, "copy", LOADERS["fasttext"])
    same = _register(project, "copy", result.path, codes, "a-third-set")
    set_default_model(project, same)
    decision = serving_after_training(project, same, result.model_id)
    assert decision.replaced and default_model_id(project) == same
    with project.transaction() as conn:
        conn.execute("DELETE FROM models WHERE id IN (?, ?)", (new, same))
    set_default_model(project, result.model_id)


def test_the_cli_keeps_the_serving_coder_when_a_new_one_does_worse_on_the_same_texts(trained, capsys):
    project, codes, result = trained
    set_default_model(project, result.model_id)
    project.conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
    assert main(["coders", "train", "-p", str(project.path), "--subset", "10,11,12", "--real", "1",
                 "--epoch", "1", "--name", "one epoch"]) == 0
    err = capsys.readouterr().err
    new = max(m for (m,) in project.conn.execute("SELECT id FROM models"))
    comparison = compare_on_validation(project, [new, result.model_id])
    assert comparison.top1[new] < comparison.top1[result.model_id]
    assert default_model_id(project) == result.model_id
    assert f"Model {result.model_id} is still used for coding" in err and f"coders default {new}" in err
