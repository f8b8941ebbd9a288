"""The worker: the only process in which a student's file runs.

It imports the student's file, then serves the judge's requests (call a function, read an
attribute, ...) and answers with plain data (:mod:`.wire`). It knows nothing of the checks or
the reference solution: no path to them is passed here, the judge keeps the verdicts, and the
library's off-limits modules are loaded from their inert shadows (:mod:`.offlimits`).

Before the student's file is imported, the worker lowers its own resource limits (memory,
CPU time, file size, processes; with ``--sandbox`` they cannot be raised again, since the
sandbox drops every capability), so whatever the file does, it does within them.

The protocol, one frame per message:

=========================  ===============================================================
judge -> worker (pickle)    ``("call", target, args, kwargs)``, ``("getattr", target, name)``,
                            ``("setattr", target, name, value)``, ``("getitem", target, key)``,
                            ``("len", target)``, ``("list", target)``, ``("reply", ok, value)``
worker -> judge (plain)     ``["ready"]``, ``["ok", value, tripped]``,
                            ``["raise", error, tripped]``, ``["callback", id, args, kwargs]``
=========================  ===============================================================

``target`` 0 is the student's module; other ids are objects the worker sent as handles.
"""
import importlib.util
import io
import json
import os
import pathlib
import pickle
import resource
import sys
import traceback

from ..errors import MLSecError
from . import offlimits, wire

MODULE = 0
MAX_LIST = 10**6


class Callback:
    """A judge function the student's code may call (a model's ``predict``, an attack)."""

    def __init__(self, worker, id):
        self._worker, self._id = worker, id

    def __call__(self, *args, **kwargs):
        return self._worker.call_judge(self._id, args, kwargs)

    def __repr__(self):
        return f"<the grader's function #{self._id}>"


class JudgeError(MLSecError):
    """A grader function, called by the student's code, raised."""


class Worker:
    def __init__(self, channel_in, channel_out, module_name, generation):
        self.input, self.output = channel_in, channel_out
        self.module_name, self.generation = module_name, generation
        self.objects, self.ids = {MODULE: None}, {}
        self.models = {}  # the judge's Keras models, rebuilt once per (id, weights digest)
        self.mirrors = {}  # the judge's random generators: one copy each, whose state goes on
        self.shared = ()

    # ------------------------------------------------------------------ wire
    def send(self, message):
        wire.write_frame(self.output, wire.encode(message, self.handle, self.scaffold))

    def scaffold(self, obj):
        """An object of a shared class (``SHARED_CLASSES``) travels as its attributes."""
        cls = type(obj)
        if cls.__module__ == self.module_name and cls.__qualname__ in self.shared and hasattr(obj, "__dict__"):
            return wire.Scaffold(cls.__qualname__, dict(vars(obj)))
        return None

    def receive(self):
        return Unpickler(io.BytesIO(wire.read_frame(self.input)), self).load()

    def handle(self, obj):
        """Keep ``obj`` here and describe it to the judge."""
        key = id(obj)
        if key not in self.ids:
            self.ids[key] = len(self.objects)
            self.objects[self.ids[key]] = obj
        kind, bases = "object", ()
        if isinstance(obj, type) and issubclass(obj, BaseException):
            kind, bases = "exception class", exception_lineage(obj)
        elif isinstance(obj, type):
            kind = "class"
        elif callable(obj):
            kind = "callable"
        return wire.Handle(self.ids[key], self.generation, type(obj).__qualname__, kind,
                           str(getattr(obj, "__qualname__", getattr(obj, "__name__", "")))[:200], bases)

    def resolve(self, target):
        return self.module if target == MODULE else self.objects[target]

    # ------------------------------------------------------------------ serving
    def serve(self):
        """Answer requests until the judge closes the channel."""
        while True:
            try:
                request = self.receive()
            except EOFError:
                return
            except Exception as e:  # the grader sent something this process cannot rebuild
                self.send(["raise", {"type": "TypeError", "bases": ["TypeError"], "student": [], "where": "",
                                     "message": f"the grader's arguments could not be rebuilt in your process "
                                                f"({type(e).__name__}: {safe_str(e)})"}, []])
                continue
            self.answer(request)

    def answer(self, request):
        offlimits.TRIPPED.clear()
        try:
            value = self.perform(*request)
        except BaseException as e:  # noqa: B036 (the student's exit() and KeyboardInterrupt are answers too)
            self.send(["raise", self.describe(e), list(offlimits.TRIPPED)])
        else:
            try:
                self.send(["ok", value, list(offlimits.TRIPPED)])
            except Exception as e:  # a result too deep, too large or of an unknown kind
                self.send(["raise", {"type": "TypeError", "bases": ["TypeError"], "student": [],
                                     "message": f"returned something the grader cannot read: {e}", "where": ""},
                           list(offlimits.TRIPPED)])

    def perform(self, op, target, *rest):
        obj = self.resolve(target)
        if op == "call":
            args, kwargs = rest
            return obj(*args, **kwargs)
        if op == "getattr":
            (name,) = rest
            if target == MODULE and not hasattr(obj, name):
                raise AttributeError(f"your file does not define {name}")
            return getattr(obj, name)
        if op == "setattr":
            setattr(obj, *rest)
            return None
        if op == "getitem":
            return obj[rest[0]]
        if op == "len":
            return int(len(obj))
        if op == "seed":  # the judge seeds the student's process the way a check seeds its own
            import random

            import numpy as np

            random.seed(rest[0])
            np.random.seed(rest[0])
            if "keras" in sys.modules:
                sys.modules["keras"].utils.set_random_seed(rest[0])
            return None
        if op == "list":
            items = []
            for item in obj:
                items.append(item)
                if len(items) > MAX_LIST:
                    raise ValueError(f"more than {MAX_LIST} items")
            return items
        raise ValueError(f"unknown request {op!r}")

    def call_judge(self, callback_id, args, kwargs):
        """Call a grader function; serve the judge's own requests while it runs."""
        self.send(["callback", callback_id, list(args), kwargs])
        while True:
            request = self.receive()
            if request[0] == "reply":
                _, ok, value = request
                if ok:
                    return value
                raise JudgeError(value)
            self.answer(request)

    def describe(self, exc):
        """What the judge needs to re-raise ``exc``: its type, lineage, message and place."""
        where = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == self.path]
        at = f" (line {where[-1].lineno}, in {where[-1].name})" if where else ""
        if isinstance(exc, SystemExit):
            message = f"your code called exit({safe_repr(exc.code)}); a function should return or raise instead"
        else:
            message = safe_str(exc)
        return {"type": type(exc).__qualname__, "bases": builtin_bases(type(exc)),
                "student": exception_lineage(type(exc)) if type(exc).__module__ == self.module_name else [],
                "message": message, "where": at}

    # ------------------------------------------------------------------ start
    def load(self, path):
        """Import the student's file; answer ``["ready"]`` or the reason it failed."""
        self.path = str(path)
        spec = importlib.util.spec_from_file_location(self.module_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[self.module_name] = module  # dataclasses and pickle look themselves up here
        offlimits.TRIPPED.clear()
        try:
            spec.loader.exec_module(module)
        except SyntaxError as e:
            error = {"type": "SyntaxError", "bases": ["SyntaxError"], "student": [], "where": "",
                     "message": f"{os.path.basename(path)} has a syntax error on line {e.lineno}: {e.msg}"}
            self.send(["raise", error, []])
            return False
        except BaseException as e:  # noqa: B036
            self.send(["raise", self.describe(e), list(offlimits.TRIPPED)])
            return False
        self.module = module
        self.send(["ready"])
        return True


class Unpickler(pickle.Unpickler):
    """Pickle from the judge, with its references: handles back to objects, callbacks, models."""

    def __init__(self, stream, worker):
        super().__init__(stream)
        self.worker = worker

    def persistent_load(self, pid):
        kind = pid[0]
        if kind == "handle":
            _, id, generation = pid
            if generation != self.worker.generation or id not in self.worker.objects:
                raise ValueError("an object from an earlier run of your code, which was stopped")
            return self.worker.objects[id]
        if kind == "callback":
            return Callback(self.worker, pid[1])
        if kind == "path":
            return pathlib.Path(pid[1])
        if kind == "mirror":  # the same judge object is the same object here, every time
            _, key, obj = pid
            return self.worker.mirrors.setdefault(key, obj)
        if kind == "scaffold":
            _, name, fields = pid
            obj = object.__new__(getattr(self.worker.module, name))
            obj.__dict__.update(fields)
            return obj
        if kind == "keras":
            _, key, digest, config, weights = pid
            if (key, digest) not in self.worker.models:
                import keras

                model = keras.saving.deserialize_keras_object(json.loads(config))
                model.set_weights(weights)
                self.worker.models[(key, digest)] = model
            return self.worker.models[(key, digest)]
        raise pickle.UnpicklingError(f"unknown reference {kind!r}")


def builtin_bases(cls):
    """The built-in exception types ``cls`` derives from, nearest first."""
    return [c.__name__ for c in cls.__mro__ if c.__module__ == "builtins" and issubclass(c, BaseException)]


def exception_lineage(cls):
    """For a student's exception class: its own classes, nearest first, then its built-in base."""
    own = [c.__qualname__ for c in cls.__mro__ if c.__module__ == cls.__module__ and c.__module__ != "builtins"]
    return own + builtin_bases(cls)[:1]


def safe_str(exc, limit=2000):
    try:
        text = str(exc)
    except BaseException:  # noqa: B036 (an exception whose __str__ raises, or exits)
        text = "(its message could not be printed)"
    if not isinstance(text, str):
        text = "(its message is not text)"
    return text[:limit]


def safe_repr(value, limit=200):
    try:
        return repr(value)[:limit]
    except BaseException:  # noqa: B036
        return "(unprintable)"


def set_limits(limits):
    """Lower this process's resource limits; ``{"memory": bytes, "cpu": s, "file_size": bytes, "processes": n}``."""
    names = {"memory": resource.RLIMIT_AS, "cpu": resource.RLIMIT_CPU, "file_size": resource.RLIMIT_FSIZE,
             "processes": resource.RLIMIT_NPROC}
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    for name, value in limits.items():
        if value is not None:
            soft, hard = resource.getrlimit(names[name])
            value = int(value) if hard == resource.RLIM_INFINITY else min(int(value), hard)
            resource.setrlimit(names[name], (value, value))


def main(argv=None):
    """``python -m mlsec_lessons.grading.worker FD_IN FD_OUT FILE MODULE_NAME GENERATION CONFIG_JSON``."""
    fd_in, fd_out, path, module_name, generation, config = (argv or sys.argv[1:])[:6]
    config = json.loads(config)
    channel_in, channel_out = os.fdopen(int(fd_in), "rb"), os.fdopen(int(fd_out), "wb")
    shadows = config.get("shadows") or {}
    for name in list(sys.modules):
        if name in shadows:  # imported before the finder was in place: load it again, from its shadow
            del sys.modules[name]
    sys.meta_path.insert(0, offlimits.ShadowFinder(shadows))
    limits = dict(config.get("limits", {}))
    if not os.path.exists("/submission"):  # outside the sandbox RLIMIT_NPROC counts the user's every process
        limits.pop("processes", None)
    set_limits(limits)
    sys.argv = [path]  # nothing of the grader's command line
    worker = Worker(channel_in, channel_out, module_name, int(generation))
    worker.shared = tuple(config.get("shared", ()))
    if worker.load(path):
        worker.serve()


if __name__ == "__main__":
    main()
