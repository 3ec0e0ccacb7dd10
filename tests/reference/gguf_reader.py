"""gguf_reader.py: a small, strict GGUF v3 reader for the NumPy reference.

Owns: parsing the GGUF container (header, typed metadata, tensor infos) with
every count, length and offset checked against the bytes that remain, and
handing out each tensor's raw bytes as a read-only numpy.memmap slice.
Does not own: turning block formats into numbers (dequant.py) or the model.

Spec followed (ggml docs/gguf.md, restated): little-endian throughout.
  u32 magic 'GGUF', u32 version (3), u64 tensor_count, u64 kv_count;
  kv_count x { string key, u32 value_type, value };
  tensor_count x { string name, u32 n_dims, u64 ne[n_dims], u32 ggml_type,
                   u64 offset };
  padding to general.alignment (u32, default 32), then the data section;
  each tensor offset is relative to the data section and aligned.
  string = u64 length + UTF-8 bytes (no NUL); array = u32 elem_type,
  u64 count, elements; bool = one byte 0/1.
"""

import struct

import numpy as np

from dequant import GGML_TYPES  # {type_id: (name, block_elems, block_bytes)}

GGUF_MAGIC = b"GGUF"
GGUF_VERSION = 3
DEFAULT_ALIGNMENT = 32
MAX_DIMS = 4
MAX_ARRAY_DEPTH = 4

# value type id -> (name, struct format or None for string/array)
VALUE_TYPES = {
    0: ("uint8", "<B"), 1: ("int8", "<b"), 2: ("uint16", "<H"),
    3: ("int16", "<h"), 4: ("uint32", "<I"), 5: ("int32", "<i"),
    6: ("float32", "<f"), 7: ("bool", "<B"), 8: ("string", None),
    9: ("array", None), 10: ("uint64", "<Q"), 11: ("int64", "<q"),
    12: ("float64", "<d"),
}
TYPE_STRING = 8
TYPE_ARRAY = 9
TYPE_BOOL = 7
TYPE_UINT32 = 4


class GGUFError(Exception):
    """Malformed or unsupported file; the message names file, what, where."""


class _Cursor:
    """Bounded read cursor over a bytes-like buffer: never reads past end."""

    def __init__(self, buf, path):
        self.buf = buf
        self.pos = 0
        self.end = len(buf)
        self.path = path

    def fail(self, what):
        raise GGUFError(f"{self.path}: {what} (at offset {self.pos})")

    def take(self, n, what):
        if n < 0 or n > self.end - self.pos:
            self.fail(f"{what}: needs {n} bytes, {self.end - self.pos} left")
        b = self.buf[self.pos:self.pos + n]
        self.pos += n
        return b

    def scalar(self, fmt, what):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt), what))[0]

    def u32(self, what):
        return self.scalar("<I", what)

    def u64(self, what):
        return self.scalar("<Q", what)

    def string(self, what):
        n = self.u64(what + " length")
        raw = bytes(self.take(n, what))
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            self.fail(f"{what}: not valid UTF-8")
            return ""  # unreachable


def _min_value_bytes(vtype):
    """Smallest encoding of one value of vtype (for count sanity checks)."""
    if vtype == TYPE_STRING:
        return 8
    if vtype == TYPE_ARRAY:
        return 12
    return struct.calcsize(VALUE_TYPES[vtype][1])


def _read_value(cur, vtype, what, depth=0):
    if vtype not in VALUE_TYPES:
        cur.fail(f"{what}: unknown value type {vtype}")
    if vtype == TYPE_STRING:
        return cur.string(what)
    if vtype == TYPE_ARRAY:
        if depth >= MAX_ARRAY_DEPTH:
            cur.fail(f"{what}: arrays nested deeper than {MAX_ARRAY_DEPTH}")
        etype = cur.u32(what + " element type")
        if etype not in VALUE_TYPES:
            cur.fail(f"{what}: unknown array element type {etype}")
        n = cur.u64(what + " count")
        if n > (cur.end - cur.pos) // _min_value_bytes(etype):
            cur.fail(f"{what}: array count {n} exceeds the bytes left")
        fmt = VALUE_TYPES[etype][1]
        if fmt is not None and etype != TYPE_BOOL:
            raw = cur.take(n * struct.calcsize(fmt), what)
            return np.frombuffer(raw, dtype=np.dtype(fmt)).tolist()
        return [_read_value(cur, etype, f"{what}[{i}]", depth + 1)
                for i in range(n)]
    v = cur.scalar(VALUE_TYPES[vtype][1], what)
    if vtype == TYPE_BOOL:
        if v > 1:
            cur.fail(f"{what}: bool byte {v} is not 0 or 1")
        return bool(v)
    return v


class TensorInfo:
    """One tensor: name, ne (ggml order, ne[0] contiguous), type, offsets."""

    def __init__(self, name, ne, type_id, offset):
        self.name = name
        self.ne = tuple(ne)
        self.type_id = type_id
        self.type_name, self.block_elems, self.block_bytes = GGML_TYPES[type_id]
        self.offset = offset          # relative to the data section
        n = 1
        for d in ne:
            n *= d
        self.n_elements = n
        self.n_bytes = n // self.block_elems * self.block_bytes

    @property
    def shape(self):
        """NumPy shape (row-major): ne reversed, e.g. ne {H, N} -> (N, H)."""
        return tuple(reversed(self.ne))


class GGUFFile:
    """An open GGUF file: .metadata (dict), .tensors (dict name->TensorInfo),
    .alignment, .data_offset; tensor_bytes(name) returns a uint8 memmap."""

    def __init__(self, path):
        self.path = str(path)
        try:
            self._mm = np.memmap(self.path, dtype=np.uint8, mode="r")
        except (OSError, ValueError) as e:
            raise GGUFError(f"{self.path}: cannot map: {e}") from e
        cur = _Cursor(memoryview(self._mm), self.path)
        self._read_header(cur)
        self.metadata = {}
        self.value_types = {}
        self._read_metadata(cur)
        self.alignment = self._alignment(cur)
        self.tensors = {}
        self._read_tensor_infos(cur)
        pad = (-cur.pos) % self.alignment
        self.data_offset = cur.pos + pad
        if self.data_offset > cur.end and self.tensors:
            cur.fail(f"data section at {self.data_offset} > file size {cur.end}")
        self._check_tensor_extents(cur.end)

    def _read_header(self, cur):
        magic = bytes(cur.take(4, "magic"))
        if magic != GGUF_MAGIC:
            cur.fail(f"bad magic {magic!r}, expected {GGUF_MAGIC!r}")
        version = cur.u32("version")
        if version != GGUF_VERSION:
            cur.fail(f"unsupported version {version}, expected {GGUF_VERSION}")
        self._n_tensors = cur.u64("tensor_count")
        self._n_kv = cur.u64("kv_count")
        left = cur.end - cur.pos
        # a kv takes >= 8+4+1 bytes, a tensor info >= 8+4+8+4+8 bytes
        if self._n_kv > left // 13 or self._n_tensors > left // 32:
            cur.fail(f"counts (kv {self._n_kv}, tensors {self._n_tensors})"
                     f" exceed the {left} bytes left")

    def _read_metadata(self, cur):
        for i in range(self._n_kv):
            key = cur.string(f"kv[{i}] key")
            if key in self.metadata:
                cur.fail(f"duplicate key '{key}'")
            vtype = cur.u32(f"key '{key}' type")
            self.metadata[key] = _read_value(cur, vtype, f"key '{key}'")
            self.value_types[key] = vtype

    def _alignment(self, cur):
        if "general.alignment" not in self.metadata:
            return DEFAULT_ALIGNMENT
        a = self.metadata["general.alignment"]
        if self.value_types["general.alignment"] != TYPE_UINT32:
            cur.fail("general.alignment is not a uint32")
        if a == 0 or a & (a - 1):
            cur.fail(f"general.alignment {a} is not a power of two")
        return a

    def _read_tensor_infos(self, cur):
        for i in range(self._n_tensors):
            name = cur.string(f"tensor[{i}] name")
            if name in self.tensors:
                cur.fail(f"duplicate tensor '{name}'")
            n_dims = cur.u32(f"tensor '{name}' n_dims")
            if n_dims < 1 or n_dims > MAX_DIMS:
                cur.fail(f"tensor '{name}': n_dims {n_dims} not in 1..{MAX_DIMS}")
            ne = [cur.u64(f"tensor '{name}' ne[{d}]") for d in range(n_dims)]
            type_id = cur.u32(f"tensor '{name}' type")
            offset = cur.u64(f"tensor '{name}' offset")
            self._check_tensor(cur, name, ne, type_id, offset)
            self.tensors[name] = TensorInfo(name, ne, type_id, offset)

    def _check_tensor(self, cur, name, ne, type_id, offset):
        if type_id not in GGML_TYPES:
            cur.fail(f"tensor '{name}': unsupported ggml type {type_id}")
        _, be, _ = GGML_TYPES[type_id]
        n = 1
        for d in ne:
            if d > 2**62 or (d and n > 2**62 // d):
                cur.fail(f"tensor '{name}': dims {ne} overflow")
            n *= d
        if ne[0] % be:
            cur.fail(f"tensor '{name}': ne[0] {ne[0]} not a multiple of"
                     f" block size {be} of type {GGML_TYPES[type_id][0]}")
        if offset % self.alignment:
            cur.fail(f"tensor '{name}': offset {offset} not aligned to"
                     f" {self.alignment}")

    def _check_tensor_extents(self, file_size):
        data_size = max(0, file_size - self.data_offset)
        spans = []
        for t in self.tensors.values():
            if t.offset > data_size or t.n_bytes > data_size - t.offset:
                raise GGUFError(
                    f"{self.path}: tensor '{t.name}': offset {t.offset} +"
                    f" {t.n_bytes} bytes > data section size {data_size}")
            spans.append((t.offset, t.offset + t.n_bytes, t.name))
        spans.sort()
        for (a0, a1, an), (b0, _b1, bn) in zip(spans, spans[1:]):
            if b0 < a1:
                raise GGUFError(f"{self.path}: tensors '{an}' [{a0},{a1})"
                                f" and '{bn}' at {b0} overlap")

    def get(self, key, default=None):
        return self.metadata.get(key, default)

    def tensor_bytes(self, name):
        """Raw bytes of tensor `name` as a read-only uint8 memmap slice."""
        t = self.tensors[name]
        start = self.data_offset + t.offset
        return self._mm[start:start + t.n_bytes]

    def close(self):
        self._mm = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
