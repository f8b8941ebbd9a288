"""Audit trails: read the server's HMAC-chained log into a table and ask it questions.

Who called what, and when? Which requests were refused, and why? The answers are only as
good as the log, so :func:`load_audit_log` verifies the chain and its anchor first
(:func:`mlsec_lessons.deployment.audit.verify_log`) and refuses to answer from a log that does
not verify. ``verify=False`` reads it anyway, marked unverified in ``df.attrs``.

Examples
--------
>>> import tempfile, pathlib
>>> from mlsec_lessons.deployment.audit import AuditLog
>>> path = pathlib.Path(tempfile.mkdtemp()) / "audit.jsonl"
>>> log = AuditLog(path, key=bytes(32))
>>> _ = log.append(sub="alice", method="POST", path="/v1/models/digits/predict", status=200, decision="allow")
>>> _ = log.append(sub="mallory", method="POST", path="/v1/models/digits/reload", status=401, decision="deny")
>>> df = load_audit_log(path, bytes(32))
>>> query(df, decision="deny")["sub"].tolist()
['mallory']
>>> query(df, path="/v1/models/*/predict")["sub"].tolist()
['alice']
"""
import fnmatch
import json
from pathlib import Path

from ..errors import InvalidParameterError, SecurityError

DECISIONS = ("allow", "deny", "error", "refused")  # "refused": a model that failed verification at load
UNAUTHENTICATED = "(not authenticated)"  # the label of entries without a verified subject
COLUMNS = ["seq", "time", "sub", "method", "path", "model", "status", "decision", "reason", "latency_ms",
           "input_sha256"]


class AuditIntegrityError(SecurityError):
    """The log does not verify; ``report`` is the :class:`~mlsec_lessons.deployment.audit.AuditReport`."""

    def __init__(self, message, report):
        super().__init__(message)
        self.report = report


def load_audit_log(path, key, verify=True):
    """The audit log as a DataFrame, one row per entry, after checking its integrity.

    Parameters
    ----------
    path : path-like
        The JSONL log written by :class:`~mlsec_lessons.deployment.audit.AuditLog`.
    key : bytes
        Its HMAC key (``server.audit_key(...)``).
    verify : bool, default=True
        Raise :class:`AuditIntegrityError` if the chain or the anchor does not verify.
        ``False`` reads the log anyway; ``df.attrs["verified"]`` is then False.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`COLUMNS` first (``time`` as UTC timestamps), then any others the entries
        carry. ``df.attrs`` holds ``verified`` and ``report``.
    """
    import pandas as pd

    from ..deployment.audit import verify_log

    path = Path(path)
    report = verify_log(path, key)  # raises ValueError for a missing file or a short key
    if verify and not report.ok:
        raise AuditIntegrityError(f"{path.name} does not verify: {report.reason}. Refusing to answer queries "
                                  "from a log that may have been edited; pass verify=False to read it as "
                                  "unverified evidence", report)
    entries = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    df = pd.DataFrame(entries)
    for column in COLUMNS:
        if column not in df:
            df[column] = None
    df["time"] = pd.to_datetime(df["time"], utc=True)
    df = df[COLUMNS + [c for c in df.columns if c not in COLUMNS + ["prev", "mac"]]]
    df.attrs.update(verified=bool(report.ok), report=report)
    return df


def _as_list(name, value, kind):
    values = [value] if isinstance(value, kind) else list(value) if isinstance(value, (list, tuple, set)) else None
    if not values or not all(isinstance(v, kind) and not isinstance(v, bool) for v in values):
        raise InvalidParameterError(f"{name} must be {kind.__name__} or a non-empty list of {kind.__name__}, got {value!r}")
    return values


def _timestamp(name, value):
    import pandas as pd

    try:
        t = pd.Timestamp(value)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"{name} must be a date and time (ISO 8601 text or datetime), got {value!r}") from None
    if t is pd.NaT:
        raise InvalidParameterError(f"{name} must be a date and time, got {value!r}")
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")  # the log is in UTC


def query(df, *, sub=None, path=None, model=None, decision=None, status=None, since=None, until=None):
    """The entries that match every filter given; ``None`` means "any".

    Parameters
    ----------
    df : DataFrame
        From :func:`load_audit_log`.
    sub, model : str or list of str
        Token subjects, model names.
    path : str or list of str
        Request paths; shell wildcards allowed (``"/v1/models/*/reload"``).
    decision : {"allow", "deny", "error", "refused"} or a list of them
    status : int or list of int
        HTTP status codes.
    since, until : str or datetime
        Inclusive bounds on ``time``; text without a time zone is read as UTC.

    Returns
    -------
    DataFrame
        The matching rows, in log order (``attrs`` kept).
    """
    if not hasattr(df, "columns") or "seq" not in df.columns:
        raise InvalidParameterError("df must be the DataFrame returned by load_audit_log")
    keep = df["seq"].notna()
    if sub is not None:
        keep &= df["sub"].isin(_as_list("sub", sub, str))
    if model is not None:
        keep &= df["model"].isin(_as_list("model", model, str))
    if path is not None:
        patterns = _as_list("path", path, str)
        keep &= df["path"].map(lambda p: isinstance(p, str) and any(fnmatch.fnmatchcase(p, q) for q in patterns))
    if decision is not None:
        decisions = _as_list("decision", decision, str)
        unknown = [d for d in decisions if d not in DECISIONS]
        if unknown:
            raise InvalidParameterError(f"decision must be among {DECISIONS}, got {unknown}")
        keep &= df["decision"].isin(decisions)
    if status is not None:
        keep &= df["status"].isin(_as_list("status", status, int))
    lo = None if since is None else _timestamp("since", since)
    hi = None if until is None else _timestamp("until", until)
    if lo is not None and hi is not None and lo > hi:
        raise InvalidParameterError(f"since ({lo}) is after until ({hi})")
    if lo is not None:
        keep &= df["time"] >= lo
    if hi is not None:
        keep &= df["time"] <= hi
    out = df[keep]
    out.attrs.update(df.attrs)
    return out


def decisions_by(df, by="sub"):
    """A count of each decision per ``by`` (a column such as ``"sub"``, ``"path"`` or ``"status"``).

    Returns
    -------
    DataFrame
        One row per value of ``by``, one column per decision, and ``total``.
    """
    import pandas as pd

    if by not in df.columns:
        raise InvalidParameterError(f"by must be a column of the log, one of {list(df.columns)}; got {by!r}")
    # the server records a subject only from a token that verified: no subject means not authenticated
    table = pd.crosstab(df[by].fillna(UNAUTHENTICATED if by == "sub" else "(none)"), df["decision"].fillna("(none)"))
    table["total"] = table.sum(axis=1)
    return table.sort_values("total", ascending=False)
