"""selftest_gguf.py: checks of gguf_reader.py (run by selftest.py).

A file written by gguf_writer.py must read back exactly; broken files must
be refused with GGUFError (never another exception, never garbage)."""

import os
import struct
import tempfile

import numpy as np

import gguf_writer as gw
from checklib import check, close
from gguf_reader import GGUFError, GGUFFile

_ALL_KVS = [("a.u8", "uint8", 200), ("a.i8", "int8", -5),
            ("a.u16", "uint16", 65535), ("a.i16", "int16", -300),
            ("a.u32", "uint32", 4000000000), ("a.i32", "int32", -7),
            ("a.f32", "float32", 1.5), ("a.bool", "bool", True),
            ("a.str", "string", "h\u00e9llo"), ("a.u64", "uint64", 2**63 + 1),
            ("a.i64", "int64", -(2**40)), ("a.f64", "float64", 0.1),
            ("a.arr", "array", ("int32", [1, -2, 3])),
            ("a.sarr", "array", ("string", ["x", "", "yz"])),
            ("a.barr", "array", ("bool", [True, False])),
            ("a.nest", "array", ("array", [("uint8", [1, 2]), ("uint8", [])]))]


def _tensors():
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    b = np.arange(5, dtype=np.float32) * -1
    return [gw.f32_tensor("t.a", a), gw.f32_tensor("t.b", b)]


def _open_bytes(data):
    fd, path = tempfile.mkstemp(suffix=".gguf")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    try:
        g = GGUFFile(path)
        g.close()
        return None
    except GGUFError as e:
        return str(e)
    finally:
        os.unlink(path)


def test_gguf_roundtrip():
    data = gw.build_gguf(_ALL_KVS, _tensors(), alignment=64)
    fd, path = tempfile.mkstemp(suffix=".gguf")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    try:
        g = GGUFFile(path)
        want = {k: v for k, _t, v in _ALL_KVS}
        want["a.arr"] = [1, -2, 3]
        want["a.sarr"] = ["x", "", "yz"]
        want["a.barr"] = [True, False]
        want["a.nest"] = [[1, 2], []]
        for k, v in want.items():
            check(g.metadata.get(k) == v or
                  (k == "a.f64" and abs(g.metadata[k] - v) < 1e-17),
                  f"kv {k}: {g.metadata.get(k)!r} != {v!r}")
        check(g.data_offset % 64 == 0, "data section aligned to 64")
        t = g.tensors["t.a"]
        check(t.ne == (4, 3) and t.shape == (3, 4), f"t.a ne {t.ne}")
        close(g.tensor_bytes("t.a").view("<f4").reshape(3, 4),
              np.arange(12).reshape(3, 4), 0, "t.a data")
        close(g.tensor_bytes("t.b").view("<f4"), -np.arange(5), 0, "t.b data")
        check(g.tensors["t.b"].offset % 64 == 0, "t.b offset aligned")
        g.close()
    finally:
        os.unlink(path)


def _broken_files():
    """(what, bytes) pairs that a strict reader must refuse."""
    good = gw.build_gguf([("k", "uint32", 1)], _tensors())
    kv = gw.encode_kv("k", "uint32", 1)
    hdr = b"GGUF" + struct.pack("<IQQ", 3, 0, 1)
    cases = [("bad magic", b"GGUG" + good[4:]),
             ("version 2", good[:4] + struct.pack("<I", 2) + good[8:]),
             ("empty", b""), ("header cut", good[:10]),
             ("truncated data", good[:-4]),
             ("huge kv count", b"GGUF" + struct.pack("<IQQ", 3, 0, 2**62) + kv),
             ("huge tensor count", b"GGUF" + struct.pack("<IQQ", 3, 2**40, 1) + kv),
             ("string past end", hdr + struct.pack("<Q", 2**40) + b"k"),
             ("unknown value type", hdr + struct.pack("<Q", 1) + b"k" +
              struct.pack("<I", 99) + b"\0" * 8),
             ("array count past end", hdr + struct.pack("<Q", 1) + b"k" +
              struct.pack("<IIQ", 9, 4, 2**50)),
             ("bool byte 2", hdr + struct.pack("<Q", 1) + b"k" +
              struct.pack("<IB", 7, 2)),
             ("duplicate key", b"GGUF" + struct.pack("<IQQ", 3, 0, 2) + kv + kv),
             ("bad utf-8 key", hdr + struct.pack("<QB", 1, 0xFF) +
              struct.pack("<II", 4, 1))]
    return cases + _broken_tensor_files()


def _tensor_file(name="t", ne=(4,), type_id=0, offset=0, data=b"\0" * 16,
                 align=None, n_dims=None):
    kvs = [] if align is None else [("general.alignment", "uint32", align)]
    out = b"GGUF" + struct.pack("<IQQ", 3, 1, len(kvs))
    out += b"".join(gw.encode_kv(*k) for k in kvs)
    nb = name.encode()
    out += struct.pack("<Q", len(nb)) + nb
    out += struct.pack("<I", len(ne) if n_dims is None else n_dims)
    out += b"".join(struct.pack("<Q", d) for d in ne)
    out += struct.pack("<IQ", type_id, offset)
    out += b"\0" * ((-len(out)) % (align or 32))
    return out + data


def _broken_tensor_files():
    two = gw.build_gguf([], [("x", (8,), 0, b"\0" * 32), ("x", (8,), 0, b"\0" * 32)])
    return [("tensor past end", _tensor_file(ne=(5,))),
            ("offset past end", _tensor_file(offset=2**60)),
            ("misaligned offset", _tensor_file(offset=4, data=b"\0" * 20)),
            ("unknown ggml type", _tensor_file(type_id=77)),
            ("ne0 not block multiple", _tensor_file(ne=(16,), type_id=8)),
            ("n_dims 0", _tensor_file(ne=(), n_dims=0)),
            ("n_dims 5", _tensor_file(ne=(1, 1, 1, 1, 4))),
            ("dims overflow", _tensor_file(ne=(2**40, 2**40))),
            ("alignment 0", _tensor_file(align=0)),
            ("alignment 48", _tensor_file(align=48)),
            ("duplicate tensor", two),
            ("overlap", _overlapping())]


def _overlapping():
    out = b"GGUF" + struct.pack("<IQQ", 3, 2, 0)
    for name in (b"a", b"b"):
        out += struct.pack("<Q", 1) + name + struct.pack("<IQIQ", 1, 16, 0, 0)
    out += b"\0" * ((-len(out)) % 32)
    return out + b"\0" * 64


def test_gguf_refuses_broken_files():
    for what, data in _broken_files():
        try:
            err = _open_bytes(data)
        except Exception as e:  # anything but GGUFError is a reader bug
            check(False, f"{what}: raised {type(e).__name__}: {e}")
            continue
        check(err is not None, f"{what}: accepted")


def test_gguf_truncations():
    """Every prefix of a valid file is refused cleanly (bounded cursor)."""
    data = gw.build_gguf(_ALL_KVS, _tensors())
    for n in range(0, len(data) - 1, 7):
        try:
            err = _open_bytes(data[:n])
        except Exception as e:
            check(False, f"prefix {n}: raised {type(e).__name__}: {e}")
            return
        if not check(err is not None, f"prefix of {n} bytes accepted"):
            return


TESTS = [test_gguf_roundtrip, test_gguf_refuses_broken_files,
         test_gguf_truncations]
