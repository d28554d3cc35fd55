"""Read a GGUF file's header (metadata and tensor shapes) without loading the model."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from engine.errors import ModelError

GGUF_MAGIC = b"GGUF"

# GGUF metadata value types (gguf spec).
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
# Arrays longer than this (token lists, merges) are skipped and recorded only by length.
_MAX_KEPT_ARRAY = 64

# llama.cpp's `general.file_type` (enum llama_ftype) -> the names users know.
FILE_TYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
    11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S", 17: "Q5_K_M",
    18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS", 23: "IQ3_XXS", 24: "IQ1_S",
    25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S", 29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M",
    32: "BF16", 36: "TQ1_0", 37: "TQ2_0",
}


@dataclass(frozen=True)
class GGUFHeader:
    """What the header says: metadata key/values (long arrays as their length) and parameter count."""

    version: int
    metadata: dict[str, Any]
    tensor_count: int
    parameter_count: int
    array_lengths: dict[str, int] = field(default_factory=dict)


class _Reader:
    def __init__(self, handle: BinaryIO, path: Path):
        self.handle = handle
        self.path = path

    def read(self, n: int) -> bytes:
        data = self.handle.read(n)
        if len(data) != n:
            raise ModelError(f"{self.path} is truncated or corrupt: the GGUF header ends early")
        return data

    def unpack(self, fmt: str) -> Any:
        return struct.unpack(fmt, self.read(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        length = self.unpack("<Q")
        if length > 1 << 26:
            raise ModelError(f"{self.path} is corrupt: a GGUF string claims {length} bytes")
        return self.read(length).decode("utf-8", errors="replace")

    def skip_string(self) -> None:
        length = self.unpack("<Q")
        self.handle.seek(length, 1)

    def value(self, vtype: int, key: str, lengths: dict[str, int]) -> Any:
        if vtype in _SCALARS:
            return self.unpack(_SCALARS[vtype])
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            item_type = self.unpack("<I")
            count = self.unpack("<Q")
            lengths[key] = count
            if count <= _MAX_KEPT_ARRAY:
                return [self.value(item_type, key, {}) for _ in range(count)]
            if item_type in _SCALARS:
                self.handle.seek(count * struct.calcsize(_SCALARS[item_type]), 1)
            elif item_type == _STRING:
                for _ in range(count):
                    self.skip_string()
            else:
                for _ in range(count):
                    self.value(item_type, key, {})
            return None
        raise ModelError(f"{self.path} is corrupt: unknown GGUF value type {vtype} for '{key}'")


def read_header(path: str | Path) -> GGUFHeader:
    """Parse the header of a GGUF file. Raises ModelError for a missing, non-GGUF or corrupt file."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    with path.open("rb") as handle:
        reader = _Reader(handle, path)
        magic = handle.read(4)
        if magic != GGUF_MAGIC:
            raise ModelError(f"{path} is not a GGUF model file (it starts with {magic!r}, not b'GGUF')")
        version = reader.unpack("<I")
        if version not in (2, 3):
            raise ModelError(f"{path} uses GGUF version {version}; statcoder reads versions 2 and 3")
        tensor_count = reader.unpack("<Q")
        kv_count = reader.unpack("<Q")
        if tensor_count > 1 << 20 or kv_count > 1 << 20:
            raise ModelError(f"{path} is corrupt: implausible GGUF counts ({tensor_count} tensors, {kv_count} keys)")
        metadata: dict[str, Any] = {}
        lengths: dict[str, int] = {}
        for _ in range(kv_count):
            key = reader.string()
            metadata[key] = reader.value(reader.unpack("<I"), key, lengths)
        parameters = 0
        for _ in range(tensor_count):
            reader.skip_string()
            n_dims = reader.unpack("<I")
            if n_dims > 8:
                raise ModelError(f"{path} is corrupt: a tensor with {n_dims} dimensions")
            count = 1
            for _ in range(n_dims):
                count *= reader.unpack("<Q")
            reader.unpack("<I")  # tensor type
            reader.unpack("<Q")  # data offset
            parameters += count
    return GGUFHeader(version=version, metadata=metadata, tensor_count=tensor_count,
                      parameter_count=parameters, array_lengths=lengths)
