"""The wire between the judge and the worker that runs a student's code.

Two directions, two levels of trust:

* judge -> worker: :mod:`pickle`. The worker trusts the judge, so arguments travel whole;
  objects that live on the other side travel as references (``persistent_id``): a student
  object the judge holds (a :class:`Handle`) goes back as its id, and a judge function the
  student's code must call (a model's ``predict``, an attack) goes as a callback id.
* worker -> judge: **plain data only**, decoded without ever running code the worker chose
  (msgpack with a few extension types): numbers, strings, bytes, lists, tuples, dicts, sets,
  numpy arrays of numbers or text, Keras models as their layer config and weights (rebuilt
  by the judge in Keras' safe mode), the library's own dataclasses, and a :class:`Handle`
  for anything else, which the judge can only call and ask for attributes.

A frame is a 4-byte length and a body; a frame longer than :data:`MAX_FRAME` is refused, so a
hostile worker cannot make the judge allocate without bound.

Examples
--------
>>> decode(encode({"a": np.arange(3), "b": (1, 2**80)}))
{'a': array([0, 1, 2]), 'b': (1, 1208925819614629174706176)}
"""
import dataclasses
import importlib
import json
import pathlib
import struct

import msgpack
import numpy as np

from ..errors import MLSecError

MAX_FRAME = 256 * 2**20  # bytes: far above any honest result (the digits set is 0.5 MB)
MAX_DEPTH = 64

# extension type codes (worker -> judge)
ARRAY, BIGINT, TUPLE, SET, COMPLEX, HANDLE, KERAS, DATACLASS, FROZENSET, SCAFFOLD, PATH = range(1, 12)
PLAIN_KINDS = "biufcUSM m"  # numpy dtype kinds that hold no Python objects


class WireError(MLSecError):
    """A frame that cannot be read: too long, cut short, or not plain data."""


@dataclasses.dataclass(frozen=True)
class Scaffold:
    """An object of a class the exercise gives both sides (``SHARED_CLASSES``, e.g. ex2's
    ``TinyMLP``): its class name and its attributes, as data. The judge rebuilds it with the
    reference's copy of the class, so that its methods are the grader's, not the student's."""

    name: str
    fields: dict


@dataclasses.dataclass(frozen=True)
class Handle:
    """A student object that stays in the worker: its id there, and what it is.

    ``kind`` is one of ``"object"``, ``"callable"``, ``"class"``, ``"exception class"``;
    ``bases`` (for exception classes) the built-in exception types it derives from.
    """

    id: int
    generation: int
    type_name: str
    kind: str = "object"
    name: str = ""
    bases: tuple = ()


# --------------------------------------------------------------------------- framing
def write_frame(stream, body):
    stream.write(struct.pack(">I", len(body)) + body)
    stream.flush()


def read_frame(stream):
    """The next frame's body; EOFError when the other side has gone."""
    header = _read_exactly(stream, 4)
    (size,) = struct.unpack(">I", header)
    if size > MAX_FRAME:
        raise WireError(f"a message of {size} bytes, over the limit of {MAX_FRAME}")
    return _read_exactly(stream, size)


def _read_exactly(stream, n):
    chunks, left = [], n
    while left:
        chunk = stream.read(left)
        if not chunk:
            raise EOFError("the other side closed the connection")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


# --------------------------------------------------------------------------- worker -> judge
def encode(value, to_handle=None, scaffold=None):
    """``value`` as plain data; ``to_handle(obj)`` turns what is not plain into a :class:`Handle`,
    and ``scaffold(obj)`` returns a :class:`Scaffold` for an object of a shared class (else None)."""
    def default(obj):
        shared = scaffold(obj) if scaffold is not None else None
        if shared is not None:
            return msgpack.ExtType(SCAFFOLD, _pack([shared.name, shared.fields], default))
        if isinstance(obj, np.ndarray) or isinstance(obj, np.generic):
            array = np.asarray(obj)
            if array.dtype.kind in PLAIN_KINDS:
                array = np.ascontiguousarray(array)
                return msgpack.ExtType(ARRAY, _pack([array.dtype.str, list(array.shape), array.tobytes(),
                                                     isinstance(obj, np.generic)]))
        elif isinstance(obj, int) and not isinstance(obj, bool):
            if type(obj) is not int and -2**63 <= obj < 2**64:
                return int.__index__(obj)  # an IntEnum or another int subclass: its value
            return msgpack.ExtType(BIGINT, int.__repr__(obj).encode())
        elif isinstance(obj, (str, float, dict, list)):  # subclasses (OrderedDict, ...) as their base
            return next(base(obj) for base in (str, float, dict, list) if isinstance(obj, base))
        elif isinstance(obj, tuple):  # a namedtuple too, as a plain tuple
            return msgpack.ExtType(TUPLE, _pack(list(obj), default))
        elif type(obj) in (set, frozenset):
            return msgpack.ExtType(SET if type(obj) is set else FROZENSET, _pack(_sorted(obj), default))
        elif isinstance(obj, pathlib.PurePath):
            return msgpack.ExtType(PATH, str(obj).encode("utf-8", errors="surrogateescape"))
        elif isinstance(obj, complex):
            return msgpack.ExtType(COMPLEX, _pack([obj.real, obj.imag]))
        elif _is_tensor(obj):
            return default(obj.numpy())
        elif _is_keras_model(obj):
            try:
                import keras

                config = json.dumps(keras.saving.serialize_keras_object(obj))
                # the results a trainer notes on the model (epsilon_, adversarial_eps_, ...), when plain
                notes = {k: v for k, v in vars(obj).items() if k.endswith("_") and not k.startswith("_")
                         and isinstance(v, (int, float, str, bool, type(None)))}
                return msgpack.ExtType(KERAS, _pack([config, [np.asarray(w) for w in obj.get_weights()], notes],
                                                    default))
            except Exception:  # a model Keras cannot describe stays in the worker
                pass
        elif _is_library_dataclass(obj):
            fields = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
            return msgpack.ExtType(DATACLASS, _pack([type(obj).__module__, type(obj).__qualname__, fields], default))
        elif isinstance(obj, Handle):
            return msgpack.ExtType(HANDLE, _pack(dataclasses.astuple(obj), default))
        if to_handle is None:
            raise WireError(f"cannot send a {type(obj).__name__} as plain data")
        return msgpack.ExtType(HANDLE, _pack(dataclasses.astuple(to_handle(obj)), default))

    return _pack(value, default)


def _pack(value, default=None):
    # strict_types: tuples and subclasses of int/str/dict reach `default` instead of passing as their base
    return msgpack.packb(value, default=default, strict_types=True, use_bin_type=True)


def _sorted(items):
    try:
        return sorted(items)
    except TypeError:
        return list(items)


def decode(body):
    """Plain data from ``body``. Never imports or runs anything the sender names, except the
    library's own dataclasses and Keras' built-in layers (in safe mode)."""
    depth = [0]

    def ext_hook(code, data):
        depth[0] += 1
        try:
            if depth[0] > MAX_DEPTH:
                raise WireError("data nested too deeply")
            if code == ARRAY:
                dtype, shape, raw, scalar = _unpack(data, ext_hook)
                dtype = np.dtype(dtype)
                if dtype.kind not in PLAIN_KINDS or dtype.hasobject:
                    raise WireError(f"an array of dtype {dtype}")
                array = np.frombuffer(raw, dtype=dtype).reshape([int(s) for s in shape]).copy()
                return array[()] if scalar else array
            if code == BIGINT:
                text = data.decode("ascii")
                if len(text) > 5000:
                    raise WireError("an integer with more than 5000 digits")
                return int(text)
            if code == TUPLE:
                return tuple(_unpack(data, ext_hook))
            if code in (SET, FROZENSET):
                items = _unpack(data, ext_hook)
                return set(items) if code == SET else frozenset(items)
            if code == COMPLEX:
                real, imag = _unpack(data, ext_hook)
                return complex(float(real), float(imag))
            if code == HANDLE:
                fields = _unpack(data, ext_hook)
                return Handle(int(fields[0]), int(fields[1]), str(fields[2]), str(fields[3]), str(fields[4]),
                              tuple(str(b) for b in fields[5]))
            if code == KERAS:
                config, weights, notes = _unpack(data, ext_hook)
                model = _rebuild_keras(config, weights)
                for key, value in notes.items():
                    if isinstance(key, str) and key.endswith("_") and isinstance(value, (int, float, str, bool,
                                                                                        type(None))):
                        setattr(model, key, value)
                return model
            if code == PATH:
                return pathlib.Path(data.decode("utf-8", errors="replace"))
            if code == SCAFFOLD:
                name, fields = _unpack(data, ext_hook)
                if not isinstance(fields, dict) or not all(isinstance(k, str) for k in fields):
                    raise WireError("a shared object without its attributes")
                return Scaffold(str(name), fields)
            if code == DATACLASS:
                module, name, fields = _unpack(data, ext_hook)
                return _rebuild_dataclass(module, name, fields)
            raise WireError(f"unknown extension type {code}")
        finally:
            depth[0] -= 1

    return _unpack(body, ext_hook)


def _unpack(data, ext_hook):
    try:
        return msgpack.unpackb(data, ext_hook=ext_hook, raw=False, strict_map_key=False, use_list=True)
    except WireError:
        raise
    except Exception as e:  # malformed bytes, unhashable keys, bad UTF-8: none of it plain data
        raise WireError(f"malformed data ({type(e).__name__}: {e})") from None


# layers whose config can make the judge load or run code of the sender's choosing
UNSAFE_LAYERS = {"TFSMLayer", "Lambda", "TorchModuleWrapper", "JaxLayer", "FlaxLayer"}


def _check_keras_config(node):
    """Refuse a config naming a layer that loads files or code, or a class from outside Keras."""
    if isinstance(node, dict):
        if node.get("class_name") in UNSAFE_LAYERS:
            raise WireError(f"a Keras model with a {node['class_name']} layer, which the grader does not load")
        module = node.get("module")
        if isinstance(module, str) and module and not (module == "keras" or module.startswith("keras.")) \
                and "class_name" in node:
            raise WireError(f"a Keras model with a class from {module!r}; build it from keras' own layers")
        for value in node.values():
            _check_keras_config(value)
    elif isinstance(node, list):
        for value in node:
            _check_keras_config(value)


def _rebuild_keras(config, weights):
    import keras

    try:
        config = json.loads(config)
    except (TypeError, ValueError):
        raise WireError("a Keras model whose config is not JSON") from None
    _check_keras_config(config)
    try:
        model = keras.saving.deserialize_keras_object(config, safe_mode=True)
        model.set_weights(weights)
    except Exception as e:
        raise WireError(f"a Keras model the grader cannot rebuild from its config ({type(e).__name__}: {e}); "
                        "build it from keras' own layers") from None
    return model


def _rebuild_dataclass(module, name, fields):
    # only the library's dataclasses, never the grader's: the module is named by the sender
    if not (module == "mlsec_lessons" or module.startswith("mlsec_lessons.")) or module.startswith("mlsec_lessons.grading"):
        raise WireError(f"a dataclass from {module!r}")
    cls = importlib.import_module(module)
    for part in name.split("."):
        cls = getattr(cls, part)
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)) or not isinstance(fields, dict):
        raise WireError(f"{module}.{name} is not a dataclass")
    obj = object.__new__(cls)
    for field in dataclasses.fields(cls):
        if field.name not in fields:
            raise WireError(f"{name} without its field {field.name!r}")
        object.__setattr__(obj, field.name, fields[field.name])
    return obj


def _is_tensor(obj):
    module = type(obj).__module__
    return module.startswith(("tensorflow", "tf_keras")) and hasattr(obj, "numpy") and hasattr(obj, "dtype")


def _is_keras_model(obj):
    return type(obj).__module__.startswith("keras") and hasattr(obj, "get_weights") and hasattr(obj, "get_config")


def _is_library_dataclass(obj):
    module = type(obj).__module__
    return (dataclasses.is_dataclass(obj) and not isinstance(obj, type) and module.startswith("mlsec_lessons.")
            and not module.startswith("mlsec_lessons.grading"))
