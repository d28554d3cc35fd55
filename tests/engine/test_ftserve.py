"""fastText served by a child process (the desktop app's mode): same answers, clear errors, no leftovers."""

from __future__ import annotations

import pytest

from engine.errors import ModelError
from engine.coders.fasttext.model import FastTextCoder
from engine.coders.fasttext.bindings import FastTextParams
from engine.coders.fasttext.serve import ChildFastText, set_out_of_process

PAIRS = [("brewing beer", "11.05"), ("making wine", "11.02"), ("cider and perry", "11.03"),
         ("bread bakery", "10.71"), ("frozen fish", "10.20")] * 30


@pytest.fixture
def model_file(tmp_path):
    coder = FastTextCoder.train(PAIRS, FastTextParams(epoch=20, dim=20, bucket=10_000, thread=1))
    path = tmp_path / "m.bin"
    coder.save(path)
    return path


def test_child_answers_exactly_like_the_in_process_model(model_file, monkeypatch):
    local = FastTextCoder.load(model_file)
    set_out_of_process(True)
    try:
        remote = FastTextCoder.load(model_file)
    finally:
        set_out_of_process(False)
    assert isinstance(remote.model, ChildFastText) and remote.codes == local.codes
    texts = ["a brewery", "wine", "", "fish fingers", "bakery shop with cakes"] * 60
    got, want = remote.predict_many(texts, k=3), local.predict_many(texts, k=3)
    assert [[c for c, _ in row] for row in got] == [[c for c, _ in row] for row in want]
    assert [p for row in got for _, p in row] == pytest.approx([p for row in want for _, p in row], abs=1e-6)
    for (code_a, p_a), (code_b, p_b) in zip(remote.predict("craft beer", 5), local.predict("craft beer", 5)):
        assert code_a == code_b and p_a == pytest.approx(p_b)
    proc = remote.model.proc
    remote.model.close()
    assert proc.poll() is not None              # the child is gone once the coder is closed


def test_a_corrupt_file_is_one_clear_error(tmp_path):
    bad = tmp_path / "broken.bin"
    bad.write_bytes(b"not a fastText model")
    with pytest.raises(ModelError, match="broken.bin"):
        ChildFastText(bad)


def test_the_child_exits_when_its_parent_closes_the_pipe(model_file):
    child = ChildFastText(model_file)
    child.proc.stdin.close()
    assert child.proc.wait(timeout=10) == 0
    with pytest.raises(ModelError, match="not running"):
        child.predict(["beer"], k=1)
