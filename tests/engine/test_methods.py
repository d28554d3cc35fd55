"""The published synthetic-data methods: SuperGen, SunGen (simplified), FuseGen as curation rules, and
hierarchy-aware training (smoothing towards siblings) for fastText and the embedding coder."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest

from engine.coders.data import DataMix, build_training_data
from engine.coders.embedding.classifier import fit_logistic
from engine.coders.hierarchy import fasttext_labels, sibling_map, smoothed_targets, soft_target_matrix
from engine.curate import CurationOptions, MethodOptions, curate, list_flags, make_sample
from engine.curate.methods import lowest_share, model_disagreement, sungen_scores, supergen_scores
from engine.errors import StatcoderError, TrainingError
from tests.conftest import REPO
from tests.engine.llm_support import gemma_path  # noqa: F401
from tests.engine.test_curate import add_run

NO_CHECK = CurationOptions(label_check=None)


def _set_logprobs(project, values: dict[int, tuple[float, int]]) -> None:
    with project.transaction() as conn:
        conn.executemany("UPDATE samples SET logprob = ?, completion_tokens = ? WHERE id = ?",
                         [(lp, tokens, sid) for sid, (lp, tokens) in values.items()])


def _status(project, sid):
    return project.conn.execute("SELECT status FROM samples WHERE id = ?", (sid,)).fetchone()[0]


# SuperGen ------------------------------------------------------------------------------------

def test_supergen_score_is_logprob_per_token_and_samples_without_one_are_left_out():
    # (id, logprob, completion tokens, logprob tokens): without a phrase token count, per request.
    assert supergen_scores([(1, -10.0, 20, None), (2, -6.0, 6, None), (3, None, 5, None), (4, -3.0, 0, None)]) == {
        1: -0.5, 2: -1.0, 4: -3.0}


def test_supergen_score_divides_by_the_phrase_tokens_when_known():
    # The same request (40 completion tokens): the phrase's own 4 tokens, not the request's 40.
    assert supergen_scores([(1, -2.0, 40, 4), (2, -8.0, 40, 4), (3, -20.0, 40, None)]) == {1: -0.5, 2: -2.0, 3: -0.5}


def test_lowest_share_is_per_code_and_floors():
    scores = {1: -1.0, 2: -2.0, 3: -3.0, 4: -4.0, 5: -0.1, 6: -0.2, 7: -0.3}
    codes = {1: "a", 2: "a", 3: "a", 4: "a", 5: "b", 6: "b", 7: "b"}
    # a: 2 of 4 lowest (4, 3); b: floor(1.5) = 1 lowest (7)
    assert set(lowest_share(scores, codes, 0.5)) == {3, 4, 7}
    assert lowest_share(scores, codes, 0.0) == {}


def test_supergen_rejects_the_least_probable_half_of_each_code_with_provenance(nace_project):
    run_id, ids = add_run(nace_project, [("10.71", "bread"), ("10.71", "cakes"), ("10.71", "rusks"),
                                         ("10.71", "pastry"), ("11.05", "beer"), ("11.05", "ale")])
    # Length-normalised: -10 over 20 tokens (-0.5) is surer than -6 over 6 (-1.0).
    _set_logprobs(nace_project, {ids[0]: (-10, 20), ids[1]: (-6, 6), ids[2]: (-1, 10), ids[3]: (-30, 10),
                                 ids[4]: (-1, 4), ids[5]: (-8, 4)})
    options = dataclasses.replace(NO_CHECK, methods=MethodOptions(supergen_share=0.5))
    result = curate(nace_project, run_ids=[run_id], options=options)
    flagged = {f.sample_id for f in list_flags(nace_project) if f.rule == "low_logprob"}
    assert flagged == {ids[1], ids[3], ids[5]} and result.flags["low_logprob"] == 3
    assert [_status(nace_project, s) for s in ids] == ["accepted", "rejected", "accepted", "rejected",
                                                       "accepted", "rejected"]
    reason = next(f.reason for f in list_flags(nace_project) if f.sample_id == ids[3])
    assert "-3.000 per token" in reason and "10.71" in reason
    params = json.loads(nace_project.conn.execute("SELECT params FROM curation_runs").fetchone()[0])
    assert params["methods"]["supergen_share"] == 0.5
    # Off by default: the same samples under the default options keep every sample.
    curate(nace_project, run_ids=[run_id], options=NO_CHECK)
    assert all(_status(nace_project, s) == "accepted" for s in ids)


def test_method_shares_out_of_range_are_refused_before_anything_is_stored(nace_project):
    run_id, _ = add_run(nace_project, [("10.71", "bread")])
    with pytest.raises(StatcoderError, match="supergen share must be at least 0 and below 1"):
        curate(nace_project, run_ids=[run_id],
               options=dataclasses.replace(NO_CHECK, methods=MethodOptions(supergen_share=1.5)))
    assert nace_project.conn.execute("SELECT COUNT(*) FROM curation_runs").fetchone()[0] == 0


# SunGen --------------------------------------------------------------------------------------

def test_sungen_scores_a_mislabelled_sample_lowest():
    rng = np.random.default_rng(0)
    centres = np.eye(8, dtype=np.float32)[:2] * 3
    train_x = np.concatenate([centres[0] + 0.3 * rng.standard_normal((10, 8)),
                              centres[1] + 0.3 * rng.standard_normal((10, 8))]).astype(np.float32)
    codes = ["a"] * 10 + ["b"] * 10
    codes[3] = "b"                      # a text of a, labelled b
    clean_x = np.stack([centres[0], centres[1]]).astype(np.float32)
    scores = sungen_scores(train_x, codes, clean_x, ["a", "b"], c=10.0)
    assert int(np.argmin(scores)) == 3
    assert scores[3] < 0 < np.median(scores)


def test_sungen_flags_the_sample_that_contradicts_the_notes(nace_project):
    texts = [("11.05", "brewery"), ("11.05", "beer brewing"), ("11.05", "craft ale brewer"),
             ("11.05", "bread and rolls bakery"), ("10.71", "fresh bread bakery"), ("10.71", "cake shop bakery"),
             ("10.71", "baker of rolls"), ("10.71", "pastry making")]
    run_id, ids = add_run(nace_project, texts)
    options = dataclasses.replace(NO_CHECK, use_real_train=False, methods=MethodOptions(sungen_share=0.25))
    result = curate(nace_project, run_ids=[run_id], options=options)
    flagged = {f.sample_id: f.reason for f in list_flags(nace_project) if f.rule == "low_influence"}
    assert result.flags["low_influence"] == 2              # floor(0.25 * 4) per code
    assert ids[3] in flagged and "clean set" in flagged[ids[3]]
    assert _status(nace_project, ids[3]) == "rejected"


# FuseGen -------------------------------------------------------------------------------------

def test_fusegen_needs_two_models_and_keeps_what_the_other_models_coder_agrees_with(nace_project):
    from engine.classification.note_lines import notes_pairs

    notes = list(notes_pairs(nace_project, ["10.71", "11.05"]))
    samples = [make_sample(1, "10.71", "bread bakery"), make_sample(2, "10.71", "cakes and pastry"),
               make_sample(3, "11.05", "brewery of beer"), make_sample(4, "11.05", "ale brewing"),
               make_sample(5, "10.71", "bread baking"), make_sample(6, "11.05", "beer brewery"),
               make_sample(7, "11.05", "fresh bread and cakes")]   # model B's mistake
    model_of = {1: "A", 2: "A", 3: "A", 4: "A", 5: "B", 6: "B", 7: "B"}
    assert model_disagreement(samples, {i: "A" for i in model_of}, notes, top_k=1) == []
    hits = model_disagreement(samples, model_of, notes, top_k=1)
    assert 7 in {h.sample_id for h in hits} and not {5, 6} & {h.sample_id for h in hits}
    assert all(h.rule == "model_disagreement" and "1 other model" in h.reason for h in hits)


@pytest.mark.slow
def test_fusegen_on_a_gemma_run_beside_a_stored_qwen_run(nace_project, gemma_path):
    """Two local models: samples the Gemma 3 270M test model generates now, and the stored Qwen2.5-Coder-1.5B run."""
    from engine.generate import GenerationParams, create_run, run_generation
    from engine.store.project import Project
    from tests.engine.llm_support import gemma_settings

    codes = ["10.71", "11.05"]
    copy = nace_project.path.parent / "stored-qwen.statcoder"   # never open the committed file itself
    shutil.copy(REPO / "bench" / "projects" / "nace-10-11.statcoder", copy)
    with Project.open(copy) as stored:
        qwen = stored.conn.execute(
            f"SELECT code, text, model_sha256 FROM samples WHERE run_id = 1 AND code IN ('10.71', '11.05')"
            " ORDER BY id").fetchall()
    run_q, q_ids = add_run(nace_project, [(c, t) for c, t, _ in qwen], name="qwen")
    with nace_project.transaction() as conn:
        conn.executemany("UPDATE samples SET model_sha256 = ? WHERE id = ?", [(qwen[0][2], i) for i in q_ids])
    run_g = create_run(nace_project, codes=codes, quota=4, seed=1, model=str(gemma_path),
                       backend=gemma_settings(gemma_path), strategies=["notes"],
                       params=GenerationParams(per_request=4, max_words=6))
    run_generation(nace_project, run_g)
    options = dataclasses.replace(NO_CHECK, use_real_train=False, methods=MethodOptions(fusegen_top_k=1))
    curate(nace_project, run_ids=[run_q, run_g], options=options)
    flags = [f for f in list_flags(nace_project) if f.rule == "model_disagreement"]
    models = dict(nace_project.conn.execute("SELECT id, model_sha256 FROM samples"))
    total = len(models)
    # Cross-model agreement judged both ways, and most samples of either model agree.
    assert len({models[f.sample_id] for f in flags}) >= 1 and len(flags) < total / 2
    assert all(_status(nace_project, f.sample_id) == "rejected" for f in flags)


# hierarchy-aware training --------------------------------------------------------------------

def test_siblings_and_smoothed_targets(nace_project):
    siblings = sibling_map(nace_project, ["10.71", "10.72", "10.73", "11.05"])
    assert siblings == {"10.71": ["10.72", "10.73"], "10.72": ["10.71", "10.73"], "10.73": ["10.71", "10.72"],
                        "11.05": []}
    assert smoothed_targets("10.71", siblings, 0.2) == [("10.71", 0.8), ("10.72", 0.1), ("10.73", 0.1)]
    assert smoothed_targets("11.05", siblings, 0.2) == [("11.05", 1.0)]
    labels = fasttext_labels("10.71", siblings, 0.2)
    assert labels.count("10.71") == 8 and labels.count("10.72") == 1 and len(labels) == 10
    matrix = soft_target_matrix(["10.71", "11.05"], ["10.71", "10.72", "10.73", "11.05"], siblings, 0.2)
    np.testing.assert_allclose(matrix, [[0.8, 0.1, 0.1, 0], [0, 0, 0, 1]], atol=1e-6)


def test_one_hot_soft_targets_fit_what_hard_labels_fit():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((30, 5)).astype(np.float32)
    y = rng.integers(0, 3, 30)
    hard = fit_logistic(x, y, 3, c=10.0)
    soft = fit_logistic(x, y, 3, c=10.0, soft=np.eye(3, dtype=np.float32)[y])
    np.testing.assert_allclose(hard.weights, soft.weights, atol=1e-4)


def _add_synthetic(project, pairs):
    run_id, _ = add_run(project, [(c, t) for t, c in pairs])
    return run_id


def test_hierarchy_smoothing_trains_fasttext_and_embeddings_with_provenance(nace_project):
    from engine.coders.registry import get_model, load_coder
    from engine.coders.train import train_coder

    codes = ["10.71", "10.72", "10.73"]
    mix = DataMix(notes=1, codes=codes, validation_share=0.0, hierarchy_smoothing=0.2)
    data = build_training_data(nace_project, mix)
    assert data.siblings["10.71"] == ["10.72", "10.73"] and data.composition["hierarchy_smoothing"] == 0.2
    assert data.labels_of(0.2)("10.71").count("10.71") == 8 and data.labels_of(0.0) is None
    for kind in ("fasttext", "embedding"):
        trained = train_coder(nace_project, mix, kind=kind, make_default=False)
        assert trained.composition["hierarchy_smoothing"] == 0.2
        stored = get_model(nace_project, trained.model_id)
        assert stored.data["hierarchy_smoothing"] == 0.2
        coder, _ = load_coder(nace_project, trained.model_id)
        prediction = coder.predict("manufacture of bread", k=3)
        assert {c for c, _ in prediction} <= set(codes) and len(prediction) == 3
    with pytest.raises(TrainingError, match="hierarchy smoothing"):
        build_training_data(nace_project, dataclasses.replace(mix, hierarchy_smoothing=1.0))


def test_cli_exposes_the_methods_and_stores_their_parameters(capsys, nace_project):
    from engine.cli import main
    from engine.store.project import Project

    run_id, ids = add_run(nace_project, [("10.71", "bread"), ("10.71", "cakes"), ("10.72", "rusks"),
                                         ("10.72", "biscuits")])
    _set_logprobs(nace_project, {ids[0]: (-1, 4), ids[1]: (-9, 4), ids[2]: (-9, 4), ids[3]: (-1, 4)})
    path = str(nace_project.path)
    nace_project.close()
    assert main(["curate", "run", "-p", path, "--run", str(run_id), "--no-label-check", "--supergen", "0.5"]) == 0
    assert "low_logprob" in capsys.readouterr().out
    assert main(["coders", "train", "-p", path, "--synthetic", "1", "--subset", "10.7", "--validation-share", "0",
                 "--hierarchy-smoothing", "0.1", "--epoch", "5", "--no-default", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["composition"]["hierarchy_smoothing"] == 0.1
    with Project.open(path) as project:
        assert [_status(project, s) for s in ids] == ["accepted", "rejected", "rejected", "accepted"]
        params = json.loads(project.conn.execute("SELECT params FROM curation_runs").fetchone()[0])
        assert params["methods"] == {"supergen_share": 0.5, "sungen_share": 0.0, "sungen_c": 100.0,
                                     "fusegen_top_k": 0}
