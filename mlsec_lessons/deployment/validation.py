"""Checking a prediction request before the model sees it.

A model is a function of numbers of one shape in one range. Anything else a client sends (a
string, ``true``, ``NaN``, a 9x9 image, a pixel of 1e30, a 2 GB body) must be refused with a
message that says what is wrong, and must never reach the model: out-of-range and non-finite
inputs are how many evasion and denial-of-service attempts start. The order matters:

1. the size of the body, before it is parsed (:func:`read_body`, 413);
2. the JSON itself (:func:`parse_json`, 422);
3. structure, type, shape, finiteness and range, value by value (:func:`validate_instances`, 422).
"""
import asyncio
import json

import numpy as np

from ..errors import MLSecError


class RequestError(MLSecError, ValueError):
    """Something wrong with what a client sent; ``status`` is the HTTP status the server answers."""

    status = 400


class ValidationError(RequestError):
    """A request whose content is wrong; the server answers 422 with this message."""

    status = 422


class BodyTooLarge(RequestError):
    """A request body over the server's limit; the server answers 413."""

    status = 413


class BodyTimeout(RequestError):
    """A request body that did not arrive within the server's time limit; the server answers 408."""

    status = 408


async def read_body(request, limit, timeout_s=None):
    """Read a Starlette request's body, refusing it past ``limit`` bytes or ``timeout_s`` seconds.

    ``Content-Length`` is checked first, then the bytes are counted as they arrive, so a client
    that lies about the length, or sends a chunked body with no length, is cut off at ``limit``
    bytes (:class:`BodyTooLarge`) instead of filling the server's memory. The whole body must
    arrive within ``timeout_s`` (:class:`BodyTimeout`): a client that sends one byte a second
    would otherwise hold a connection, and a worker's attention, for as long as it likes.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"request body is {int(declared)} bytes; the limit is {limit}")
    chunks, size = [], 0

    async def read():
        nonlocal size
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge(f"request body exceeds the limit of {limit} bytes")
            chunks.append(chunk)

    if timeout_s is None:
        await read()
    else:
        try:
            async with asyncio.timeout(timeout_s):
                await read()
        except TimeoutError:
            raise BodyTimeout(f"request body not received within {timeout_s:g} s "
                              f"({size} bytes arrived)") from None
    return b"".join(chunks)


def parse_json(body):
    """Parse a request body as JSON, or raise :class:`ValidationError` saying why not.

    Examples
    --------
    >>> parse_json(b'{"instances": [[0.5]]}')
    {'instances': [[0.5]]}
    >>> parse_json(b'{"instances": [')
    Traceback (most recent call last):
    ...
    mlsec_lessons.deployment.validation.ValidationError: body is not valid JSON: Expecting value at line 1 column 16
    """
    if not body:
        raise ValidationError('body is empty; expected JSON like {"instances": [...]}')
    try:
        return json.loads(body)
    except json.JSONDecodeError as e:
        raise ValidationError(f"body is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except (ValueError, RecursionError) as e:  # bad UTF-8, a 5000-digit integer, [[[[...]]]] nested too deep
        raise ValidationError(f"body is not valid JSON: {type(e).__name__}") from None


_TYPE = np.frompyfunc(type, 1, 1)


def as_array(instances, shape):
    """The fast path: numpy checks structure and types in C. ``None`` if anything is off.

    Nested lists of the right shape become an object array of exactly that shape; every leaf must
    then be a Python int or float (``type``, so that JSON ``true`` is not taken for 1). On ``None``
    the caller falls back to :func:`flatten_instances`, which finds the first problem and names it; the two
    agree on what is valid (tests/test_server_fuzz.py checks it).
    """
    try:
        x = np.array(instances, dtype=object)
    except ValueError:
        return None
    if x.shape != (len(instances), *shape) or not set(_TYPE(x).ravel().tolist()) <= {int, float}:
        return None
    try:
        return x.astype(np.float64)
    except OverflowError:  # an integer too large for a float
        return None


def flatten_instances(node, shape, where, out):
    """Append the numbers of ``node`` to ``out``, checking it has ``shape``; ``where`` names it."""
    if not shape:
        if type(node) not in (int, float):  # type(), not isinstance: JSON true/false are not numbers
            kind = "null" if node is None else type(node).__name__
            raise ValidationError(f"{where} is {kind}; expected a number")
        try:
            out.append(float(node))
        except OverflowError:
            raise ValidationError(f"{where} is too large to be a number the model accepts") from None
        return
    if not isinstance(node, list):
        raise ValidationError(f"{where} is {type(node).__name__ if node is not None else 'null'}; "
                              f"expected a list of {shape[0]}")
    if len(node) != shape[0]:
        raise ValidationError(f"{where} has {len(node)} elements; expected {shape[0]}")
    for i, child in enumerate(node):
        flatten_instances(child, shape[1:], f"{where}[{i}]", out)


def validate_instances(payload, shape, low=None, high=None, max_batch=256):
    """Turn ``{"instances": [...]}`` into a float32 batch of ``shape``, or raise :class:`ValidationError`.

    Parameters
    ----------
    payload : object
        The parsed JSON body.
    shape : tuple of int
        One instance's shape (no batch axis), e.g. ``(8, 8, 1)``.
    low, high : float or None
        The valid range of every value (``None``: unbounded).
    max_batch : int
        The most instances one request may send.

    Returns
    -------
    numpy.ndarray
        float32, shape ``(n, *shape)``.

    Examples
    --------
    >>> validate_instances({"instances": [[0.0, 1.0]]}, (2,), 0, 1)
    array([[0., 1.]], dtype=float32)
    >>> validate_instances({"instances": [[0.0, float("nan")]]}, (2,), 0, 1)
    Traceback (most recent call last):
    ...
    mlsec_lessons.deployment.validation.ValidationError: instances[0][1] is nan; values must be finite
    >>> validate_instances({"instances": [[0.0, 2.0]]}, (2,), 0, 1)
    Traceback (most recent call last):
    ...
    mlsec_lessons.deployment.validation.ValidationError: instances[0][1] is 2.0; values must be in [0, 1]
    """
    if not isinstance(payload, dict):
        raise ValidationError(f'body must be a JSON object like {{"instances": [...]}}, got {type(payload).__name__}')
    unknown = sorted(set(payload) - {"instances"})
    if unknown:
        raise ValidationError(f"unknown field(s) {unknown}; the body takes only 'instances'")
    if "instances" not in payload:
        raise ValidationError("missing field 'instances'")
    instances = payload["instances"]
    if not isinstance(instances, list) or not instances:
        raise ValidationError("instances must be a non-empty list")
    if len(instances) > max_batch:
        raise ValidationError(f"instances has {len(instances)} items; at most {max_batch} per request")
    x = as_array(instances, tuple(shape))
    if x is None:  # something is wrong: walk the lists in Python to say exactly what and where
        flat = []
        for i, instance in enumerate(instances):
            flatten_instances(instance, tuple(shape), f"instances[{i}]", flat)
        x = np.asarray(flat, dtype=np.float64).reshape((len(instances), *shape))
    bad = ~np.isfinite(x)
    if bad.any():
        raise ValidationError(f"{_name(bad)} is {x[bad][0]}; values must be finite")
    outside = np.zeros(x.shape, bool)
    if low is not None:
        outside |= x < low
    if high is not None:
        outside |= x > high
    if outside.any():
        raise ValidationError(f"{_name(outside)} is {x[outside][0]}; values must be in [{_num(low, '-inf')}, {_num(high, 'inf')}]")
    return x.astype(np.float32)


def _name(mask):
    """``instances[i][j]...`` of the first True in ``mask``."""
    index = np.argwhere(mask)[0]
    return "instances" + "".join(f"[{i}]" for i in index)


def _num(value, unbounded):
    return unbounded if value is None else f"{value:g}"
