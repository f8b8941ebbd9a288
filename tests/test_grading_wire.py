"""The wire from the student's worker to the judge carries plain data only: what a hostile worker
sends is decoded without running code of its choosing, or refused with a WireError."""
import io
import json
import struct
from pathlib import Path

import msgpack
import numpy as np
import pytest

from mlsec_lessons.grading import wire


def test_plain_data_round_trips():
    value = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": (1, 2**100, -3), "c": {1.5, "x"},
             "d": [None, True, "é", b"\x00"], "e": np.float64(0.25), "f": Path("/tmp/x"), 3: 1 + 2j}
    got = wire.decode(wire.encode(value))
    assert got.keys() == value.keys() and got["b"] == value["b"] and got["c"] == value["c"]
    assert got["a"].dtype == np.float32 and np.array_equal(got["a"], value["a"]) and got["e"] == 0.25
    assert got["d"] == value["d"] and got["f"] == Path("/tmp/x") and got[3] == 1 + 2j


def test_an_object_that_is_not_plain_needs_a_handle():
    with pytest.raises(wire.WireError):
        wire.encode(object())
    handle = wire.decode(wire.encode([object()], to_handle=lambda obj: wire.Handle(7, 1, "object")))[0]
    assert handle == wire.Handle(7, 1, "object")


def ext(code, payload):
    return msgpack.packb(msgpack.ExtType(code, msgpack.packb(payload, use_bin_type=True)), use_bin_type=True)


def test_an_object_array_is_refused():
    with pytest.raises(wire.WireError, match="dtype"):
        wire.decode(ext(wire.ARRAY, ["|O", [1], b"\x00" * 8, False]))


def test_a_dataclass_outside_the_library_or_of_the_grader_is_refused():
    for module in ("os", "mlsec_lessons.grading.wire", "subprocess"):
        with pytest.raises(wire.WireError):
            wire.decode(ext(wire.DATACLASS, [module, "Handle", {}]))


def test_a_keras_layer_that_loads_code_is_refused():
    config = {"module": "keras", "class_name": "Sequential", "config": {"layers": [
        {"module": "keras.layers", "class_name": "TFSMLayer", "config": {"filepath": "/tmp/evil"}}]}}
    with pytest.raises(wire.WireError, match="TFSMLayer"):
        wire.decode(ext(wire.KERAS, [json.dumps(config), [], {}]))
    config["config"]["layers"][0] = {"module": "evil.module", "class_name": "Dense", "config": {}}
    with pytest.raises(wire.WireError, match="evil.module"):
        wire.decode(ext(wire.KERAS, [json.dumps(config), [], {}]))


def test_huge_integers_and_frames_and_garbage_are_refused():
    with pytest.raises(wire.WireError, match="digits"):
        wire.decode(msgpack.packb(msgpack.ExtType(wire.BIGINT, b"9" * 6000)))
    with pytest.raises(wire.WireError, match="over the limit"):
        wire.read_frame(io.BytesIO(struct.pack(">I", wire.MAX_FRAME + 1)))
    with pytest.raises(wire.WireError):
        wire.decode(b"\xc1\xff\x00")
    with pytest.raises(EOFError):
        wire.read_frame(io.BytesIO(struct.pack(">I", 10) + b"abc"))
