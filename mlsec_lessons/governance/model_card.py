"""A model card filled only from measurements, rendered as Markdown and JSON.

Model cards (Mitchell et al., 2019) document what a model is for and how it performs. This one
holds the security-relevant results: clean accuracy, robust accuracy with its attack and eps,
the DP epsilon spent, membership-inference TPR at a low FPR, and the hash and signature of the
artifact. Each result must be a :class:`~mlsec_lessons.governance.measure.Measurement` (the
value with its method, sample size and interval): a bare number is refused, because a number
without its attack and budget is a claim. A result that was not measured is rendered as
"not measured", never left out, and ``to_markdown(strict=True)`` refuses to render at all.

Two optional entries, rendered only when present: ``worst_case_robustness``, robust accuracy under
a stronger attack ensemble (e.g. APGD-CE and APGD-DLR on a fixed subset, worst case per input),
and ``release``, the release decision (:func:`release_decision`): the policy written down before
the numbers were seen, whether each of the card's numbers meets it, and whether the model is
released.

The check guards against accidents, not against lies: anyone can build a ``Measurement`` by
hand. A card is as good as the code that filled it, so publish the code with it.

Examples
--------
>>> from mlsec_lessons.governance.measure import Measurement
>>> acc = Measurement("accuracy", 0.97, "share of 540 test images classified correctly", n=540)
>>> card = ModelCard.from_measurements("demo", [acc], intended_use="teaching", training_data={"name": "digits"})
>>> card.missing()
['robustness', 'privacy', 'membership', 'artifact']
>>> "| robust accuracy | not measured |" in card.to_markdown()
True
>>> ModelCard.from_measurements("demo", [0.999], intended_use="teaching", training_data={})
Traceback (most recent call last):
...
mlsec_lessons.errors.InvalidParameterError: measurement 0 is a float, not a Measurement: ...
"""
import json
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path

from ..errors import InvalidParameterError
from .measure import ArtifactRecord, Measurement

# card field -> the Measurement kind it holds, and how the card names it
FIELDS = {"accuracy": ("accuracy", "clean accuracy"), "robustness": ("robust accuracy", "robust accuracy"),
          "privacy": ("dp epsilon", "differential privacy"), "membership": ("membership tpr", "membership inference")}
CARD_FILE = "MODEL_CARD.json"
OPTIONAL = ("worst_case_robustness", "release")  # rendered and written only when present


@dataclass(frozen=True)
class ModelCard:
    """The measured facts about one model; build it with :meth:`from_measurements`.

    Frozen: a card changes only into a new card (``dataclasses.replace``), so one that was written
    and signed cannot drift from the object that was checked.
    """

    name: str
    intended_use: str
    training_data: dict
    accuracy: Measurement = None
    robustness: Measurement = None
    privacy: Measurement = None
    membership: Measurement = None
    artifact: ArtifactRecord = None
    not_measured: dict = field(default_factory=dict)
    limitations: list = field(default_factory=list)
    created: str = None
    worst_case_robustness: Measurement = None
    release: dict = None

    def __post_init__(self):
        for name in ("name", "intended_use"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name).strip():
                raise InvalidParameterError(f"{name} must be a non-empty string, got {getattr(self, name)!r}")
        if not isinstance(self.training_data, dict):
            raise InvalidParameterError(f"training_data must be a dict (name, size, fingerprint), got {self.training_data!r}")
        for name, (kind, _) in FIELDS.items():
            value = getattr(self, name)
            if value is not None and (not isinstance(value, Measurement) or value.kind != kind):
                got = value.kind if isinstance(value, Measurement) else type(value).__name__
                raise InvalidParameterError(f"{name} must be a Measurement of kind {kind!r}, got {got}")
        if self.artifact is not None and not isinstance(self.artifact, ArtifactRecord):
            raise InvalidParameterError(f"artifact must be an ArtifactRecord from measure.artifact(), got "
                             f"{type(self.artifact).__name__}")
        w = self.worst_case_robustness
        if w is not None and (not isinstance(w, Measurement) or w.kind != "robust accuracy"):
            raise InvalidParameterError(f"worst_case_robustness must be a Measurement of kind 'robust accuracy', got "
                             f"{w.kind if isinstance(w, Measurement) else type(w).__name__}")
        if self.release is not None and not (isinstance(self.release, dict)
                                             and {"policy", "checks", "released"} <= set(self.release)):
            raise InvalidParameterError("release must be a dict with 'policy', 'checks' and 'released' (see release_decision)")
        reasons = self.not_measured.values() if isinstance(self.not_measured, dict) else [None]
        if not all(isinstance(v, str) and v.strip() for v in reasons):
            raise InvalidParameterError("not_measured must map each property to the reason it was not measured")
        object.__setattr__(self, "limitations", list(self.limitations))  # frozen: normalised once, here
        if self.created is None:
            object.__setattr__(self, "created", datetime.now(timezone.utc).isoformat(timespec="seconds"))

    @classmethod
    def from_measurements(cls, name, measurements, *, intended_use, training_data, artifact=None,
                          not_measured=None, limitations=()):
        """A card from a list of measurements, each slotted into its field by its kind.

        Parameters
        ----------
        name : str
        measurements : sequence of Measurement
            At most one of each kind (accuracy, robust accuracy, dp epsilon, membership tpr).
        intended_use : str
            What the model is for, and what it is not for.
        training_data : dict
            E.g. ``{"name": "digits", "n": 1257, "fingerprint": ...}``.
        artifact : ArtifactRecord, optional
            From :func:`~mlsec_lessons.governance.measure.artifact`.
        not_measured : dict, optional
            ``{property: why it was not measured}`` for properties a reader would look for.
        limitations : sequence of str

        Raises
        ------
        ValueError
            For anything that is not a Measurement (a typed-in number), or two of one kind.
        """
        by_kind = {kind: name for name, (kind, _) in FIELDS.items()}
        slots = {}
        for i, m in enumerate(measurements):
            if not isinstance(m, Measurement):
                raise InvalidParameterError(f"measurement {i} is a {type(m).__name__}, not a Measurement: a number without "
                                 "its method, attack, budget and sample size is a claim, not a result; "
                                 "measure it with mlsec_lessons.governance.measure")
            if by_kind[m.kind] in slots:
                raise InvalidParameterError(f"two measurements of kind {m.kind!r}; a card reports one of each")
            slots[by_kind[m.kind]] = m
        return cls(name=name, intended_use=intended_use, training_data=dict(training_data), artifact=artifact,
                   not_measured=dict(not_measured or {}), limitations=list(limitations), **slots)

    def to_frame(self):
        """A row per property the card covers: its measurement, or why it was not measured."""
        import pandas as pd

        rows = []
        for name in (*FIELDS, "worst_case_robustness"):
            m = getattr(self, name)
            if m is not None:
                rows.append({"property": name, "value": m.value, "method": m.method, "n": m.n,
                             "interval": m.interval, "not measured because": None})
            elif name in self.not_measured:
                rows.append({"property": name, "value": None, "method": None, "n": None, "interval": None,
                             "not measured because": self.not_measured[name]})
        return pd.DataFrame(rows, columns=["property", "value", "method", "n", "interval",
                                           "not measured because"]).set_index("property")

    def missing(self):
        """The fields that were not measured (``artifact`` included)."""
        return [name for name in (*FIELDS, "artifact") if getattr(self, name) is None]

    # ----------------------------------------------------------------------- JSON
    def to_dict(self):
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in (*FIELDS, "artifact"):
            d[name] = None if d[name] is None else d[name].to_dict()
        for name in OPTIONAL:  # a card without them is written exactly as before they existed
            if d[name] is None:
                del d[name]
        if self.worst_case_robustness is not None:
            d["worst_case_robustness"] = self.worst_case_robustness.to_dict()
        return d

    def to_json(self, path=None):
        """The card as JSON text; also written to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=2, sort_keys=True, allow_nan=False) + "\n"
        if path is not None:
            Path(path).write_text(text)
        return text

    @classmethod
    def from_dict(cls, d):
        d = dict(d)
        for name in FIELDS:
            d[name] = None if d.get(name) is None else Measurement.from_dict(d[name])
        d["artifact"] = None if d.get("artifact") is None else ArtifactRecord.from_dict(d["artifact"])
        if d.get("worst_case_robustness") is not None:
            d["worst_case_robustness"] = Measurement.from_dict(d["worst_case_robustness"])
        return cls(**d)

    @classmethod
    def load(cls, path):
        """Read a card written by :meth:`to_json`."""
        path = Path(path)
        if not path.is_file():
            raise InvalidParameterError(f"path={str(path)!r}: no model card there")
        return cls.from_dict(json.loads(path.read_text()))

    # ----------------------------------------------------------------------- Markdown
    def to_markdown(self, strict=False):
        """The card as Markdown. ``strict=True`` raises ``ValueError`` if any field was not measured."""
        if strict and self.missing():
            raise InvalidParameterError(f"model card {self.name!r}: not measured: {', '.join(self.missing())}; "
                             "measure them, or render with strict=False to show them as 'not measured'")
        named = [str(self.training_data["name"])] if "name" in self.training_data else []
        data = "; ".join(named + [f"{k} = {_short(v)}" for k, v in self.training_data.items() if k != "name"])
        lines = [f"### Model card: {self.name}", "", f"*Generated {self.created} from measurements.*", "",
                 f"**Intended use.** {self.intended_use}", "", f"**Training data.** {data or 'not recorded'}", "",
                 f"**Artifact.** {self._artifact_line()}", "",
                 "| property | value | 95% interval | n | how it was measured |", "|---|---|---|---|---|"]
        for name, (_, label) in FIELDS.items():
            lines.append(_row(label, getattr(self, name)))
        if self.worst_case_robustness is not None:
            lines.append(_row("robust accuracy, attack ensemble", self.worst_case_robustness))
        if self.release is not None:
            lines += ["", f"**Release decision.** {_release_line(self.release)}"]
        if self.not_measured:
            lines += ["", "**Not measured.**", ""] + [f"- {k}: {v}" for k, v in self.not_measured.items()]
        if self.limitations:
            lines += ["", "**Limitations.**", ""] + [f"- {v}" for v in self.limitations]
        return "\n".join(lines) + "\n"

    def _artifact_line(self):
        a = self.artifact
        if a is None:
            return "not measured (no signed artifact was verified)"
        return (f"`{a.model_file}` in `{a.directory}`, SHA-256 `{a.model_sha256[:16]}…`; signature: "
                f"{a.signature}, verified with the public key whose SHA-256 is `{a.public_key_sha256[:16]}…`")


def release_decision(card, policy):
    """Whether ``card``'s numbers meet a release ``policy`` written down before they were measured.

    Parameters
    ----------
    card : ModelCard
    policy : dict
        ``{"eps": ..., "min_robust_accuracy": ..., "max_epsilon": ...}`` (lesson 09's form).

    Returns
    -------
    dict
        ``{"policy", "checks", "released"}``: ``checks`` maps each condition to ``{"meets", "detail"}``;
        robust accuracy is checked on the card's PGD measurement and, when the card has one, on the
        attack ensemble too (the weaker of the two decides). ``released`` is True only if every
        condition is met. Store it on the card as ``release``.

    Examples
    --------
    >>> from mlsec_lessons.governance.measure import Measurement
    >>> eps = Measurement("dp epsilon", 5.47, "RDP accountant", params={})
    >>> card = ModelCard.from_measurements("demo", [eps], intended_use="teaching", training_data={})
    >>> d = release_decision(card, {"eps": 0.1, "min_robust_accuracy": 0.7, "max_epsilon": 8.0})
    >>> d["released"], d["checks"]["DP epsilon <= 8"]["meets"]
    (False, True)
    """
    from .controls import meets_privacy_policy, meets_robustness_policy

    missing = {"eps", "min_robust_accuracy", "max_epsilon"} - set(policy)
    if missing:
        raise InvalidParameterError(f"policy lacks {sorted(missing)}; state the release policy the model must meet")
    eps, least, most = policy["eps"], policy["min_robust_accuracy"], policy["max_epsilon"]
    checks = {}
    ok, detail = meets_robustness_policy(card, eps, least)
    w = card.worst_case_robustness
    if w is not None:
        ok = ok and w.params.get("eps") == eps and w.value >= least
        detail += f"; attack ensemble {w.value:.3f} on {w.n} inputs"
    checks[f"robust accuracy >= {least:g} at eps={eps:g}"] = {"meets": bool(ok), "detail": detail}
    ok, detail = meets_privacy_policy(card, most)
    checks[f"DP epsilon <= {most:g}"] = {"meets": bool(ok), "detail": detail}
    return {"policy": dict(policy), "checks": checks, "released": all(c["meets"] for c in checks.values())}


def _release_line(release):
    checks = "; ".join(f"{name}: {'meets' if c['meets'] else 'FAILS'} ({c['detail']})"
                       for name, c in release["checks"].items())
    verdict = "released" if release["released"] else "**not released**: it fails the policy"
    return f"{verdict}. Policy fixed before the numbers were measured: {checks}."


def _short(v):
    return f"`{v[:16]}…`" if isinstance(v, str) and len(v) == 64 else str(v)


def _row(label, m):
    if m is None:
        return f"| {label} | not measured | | | |"
    if m.kind == "dp epsilon":
        if m.value == float("inf"):
            return f"| {label} | epsilon = inf | | | {m.method} |"
        p = m.params
        return (f"| {label} | epsilon = {m.value:.2f}, delta = {p['delta']:g} | | | {m.method} (sigma "
                f"{p['noise_multiplier']:g}, q {p['sample_rate']:.4f}, {p['steps']} steps, "
                f"clip {p['l2_norm_clip']:g}) |")
    interval = "" if m.interval is None else f"[{m.interval[0]:.3f}, {m.interval[1]:.3f}]"
    n, how = ("" if m.n is None else str(m.n)), m.method
    if m.kind == "robust accuracy" and "eps_step" in m.params:  # a PGD run; an ensemble states its own method
        p = m.params
        how += f"; step {p['eps_step']:g}, random start" + (
            f"; ASR {p['attack success rate']:.3f}" if p.get("attack success rate") is not None else "")
    if m.kind == "membership tpr":
        p = m.params
        n = f"{p['n members']} members, {p['n non-members']} non-members"
        how += f"; AUC {p['auc']:.3f}, advantage {p['advantage']:.3f}"
    return f"| {label} | {m.value:.3f} | {interval} | {n} | {how} |"


def cards_table(cards):
    """One row per card: the headline numbers side by side (a pandas DataFrame)."""
    import pandas as pd

    if not cards or not all(isinstance(c, ModelCard) for c in cards):
        raise InvalidParameterError("cards must be a non-empty sequence of ModelCard")
    rows = {}
    for c in cards:
        rob, mi = c.robustness, c.membership
        rows[c.name] = {
            "clean accuracy": None if c.accuracy is None else c.accuracy.value,
            "robust accuracy": None if rob is None else rob.value,
            "attack": None if rob is None else
            f"PGD-{rob.params['steps']} {rob.params['norm']} eps={rob.params['eps']:g}",
            "DP epsilon": None if c.privacy is None else c.privacy.value,
            "MI TPR": None if mi is None else mi.value,
            "MI TPR 95% interval": None if mi is None else f"[{mi.interval[0]:.3f}, {mi.interval[1]:.3f}]",
            "at FPR": None if mi is None else mi.params["fpr"],
            "model SHA-256": None if c.artifact is None else c.artifact.model_sha256[:12],
        }
    return pd.DataFrame.from_dict(rows, orient="index")  # per-column dtypes: numbers stay numbers
