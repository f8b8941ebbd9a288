"""The course's exceptions: one base class, so ``except MLSecError`` catches every error we raise.

A bad argument is both an :class:`MLSecError` and the built-in a caller expects: a wrong *value*
is a ``ValueError`` (:class:`InvalidParameterError`), a wrong *type* is a ``TypeError``
(:class:`ParameterTypeError`). A security failure (a tampered file, a bad signature) derives from
:class:`SecurityError` only, never from ``ValueError``, so a broad ``except ValueError`` written
for bad input cannot swallow it by accident.
"""


class MLSecError(Exception):
    """Base class of every error this package raises on purpose."""


class InvalidParameterError(MLSecError, ValueError):
    """An argument has the right type but a value outside what the function accepts."""


class ParameterTypeError(MLSecError, TypeError):
    """An argument has the wrong type (a float where an int is needed, a string for a number)."""


class SecurityError(MLSecError):
    """A security check failed: integrity, authenticity or policy. Never a ``ValueError``."""


class RunError(MLSecError, RuntimeError):
    """Something the course ran (a simulation, a server process, a check) did not finish as it must."""
