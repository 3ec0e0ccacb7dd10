"""gguf_writer.py: a tiny GGUF v3 writer used only by the reference's own
tests (selftest.py) to build small files, valid or deliberately broken.

Owns: serialising typed metadata and raw tensor bytes in the layout that
gguf_reader.py documents. Does not own: quantization (callers pass the raw
bytes of each tensor in its ggml type) or any model logic.
"""

import struct

import numpy as np

VT = {"uint8": 0, "int8": 1, "uint16": 2, "int16": 3, "uint32": 4,
      "int32": 5, "float32": 6, "bool": 7, "string": 8, "array": 9,
      "uint64": 10, "int64": 11, "float64": 12}
_FMT = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f",
        7: "<B", 10: "<Q", 11: "<q", 12: "<d"}


def _string(s):
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def _value(vtype, value):
    """Encode one value; an array value is (elem_type_name, items)."""
    if vtype == VT["string"]:
        return _string(value)
    if vtype == VT["array"]:
        etype_name, items = value
        etype = VT[etype_name]
        out = struct.pack("<IQ", etype, len(items))
        return out + b"".join(_value(etype, it) for it in items)
    return struct.pack(_FMT[vtype], value)


def encode_kv(key, type_name, value):
    vt = VT[type_name]
    return _string(key) + struct.pack("<I", vt) + _value(vt, value)


def build_gguf(kvs, tensors, alignment=32, version=3):
    """kvs: list of (key, type_name, value); tensors: list of
    (name, ne tuple, ggml type id, raw bytes). Returns the file as bytes.
    Each tensor is placed at the next aligned offset of the data section."""
    head = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kvs))
    meta = b"".join(encode_kv(k, t, v) for k, t, v in kvs)
    infos = b""
    blobs = b""
    for name, ne, type_id, raw in tensors:
        blobs += b"\0" * ((-len(blobs)) % alignment)
        infos += _string(name) + struct.pack("<I", len(ne))
        infos += b"".join(struct.pack("<Q", d) for d in ne)
        infos += struct.pack("<IQ", type_id, len(blobs))
        blobs += bytes(raw)
    out = head + meta + infos
    out += b"\0" * ((-len(out)) % alignment)
    return out + blobs


def write_gguf(path, kvs, tensors, alignment=32):
    with open(path, "wb") as f:
        f.write(build_gguf(kvs, tensors, alignment))


def f32_tensor(name, array):
    """A float32 tensor entry; ne is the NumPy shape reversed."""
    a = np.ascontiguousarray(array, dtype="<f4")
    return (name, tuple(reversed(a.shape)), 0, a.tobytes())
