"""A compliance checklist in which every item points at evidence that exists, or says "not covered".

Each :class:`Item` names a provision (GDPR, the EU AI Act, the NIST AI RMF), what it asks for,
and either the artifacts the course produced for it (:class:`Evidence`: a file, a function, a
test, a lesson section) or the plain statement "not covered" with the reason. The evidence is
checked when the checklist is rendered: a file that is gone, a function that was renamed or a
section that was deleted makes :meth:`Checklist.check` raise :class:`MissingEvidence`, naming
every one, instead of printing a tick.

This is engineering evidence, not legal advice: whether a system complies depends on its use,
its operator and its context, which no code can check. There is no "compliance score" here on
purpose: a percentage of ticked items would weigh a missing risk management system the same
as a missing security header.

Examples
--------
>>> item = Item("GDPR", "Art. 17", "right to erasure", "not covered", note="no unlearning")
>>> Checklist([item]).to_frame()[["framework", "status"]].values.tolist()
[['GDPR', 'not covered']]
>>> bad = Item("EU AI Act", "Art. 12", "record-keeping", "covered", [Evidence("file", "no/such/file.py")])
>>> Checklist([bad]).check()
Traceback (most recent call last):
...
mlsec_lessons.governance.checklist.MissingEvidence: 1 piece of evidence is missing: EU AI Act Art. 12: file ...
"""
import datetime
import importlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from .. import course
from ..errors import InvalidParameterError, MLSecError, ParameterTypeError

KINDS = ("file", "function", "test", "section")
STATUSES = ("covered", "partial", "not covered")

# --------------------------------------------------------------------------- when the EU AI Act applies
TIMELINE_CHECKED = datetime.date(2026, 12, 6)
"""The day :data:`AI_ACT_TIMELINE` was last checked against its sources."""

AI_ACT_TIMELINE = (
    (datetime.date(2024, 8, 1), "entry into force; no obligation applies yet", "all", "Art. 113"),
    (datetime.date(2025, 2, 2), "general provisions, AI literacy (Art. 4) and the prohibited practices (Art. 5)",
     "all", "Art. 113(a)"),
    (datetime.date(2025, 8, 2), "general-purpose AI models (Chapter V), governance, notified bodies, penalties",
     "all", "Art. 113(b)"),
    (datetime.date(2026, 8, 2), "the Act's general date of application, for what no other row moves "
     "(e.g. transparency duties, Art. 50)", "all", "Art. 113"),
    (datetime.date(2027, 12, 2), "high-risk obligations for Annex III uses (Art. 6(2); Arts. 8-15, 72 and the rest "
     "of Chapter III); the Act had 2 Aug 2026", "Annex III", "Digital Omnibus, political agreement of 7 May 2026"),
    (datetime.date(2028, 8, 2), "high-risk obligations for products under Annex I (Art. 6(1)); the Act had "
     "2 Aug 2027", "Annex I", "Digital Omnibus, political agreement of 7 May 2026"),
)
"""``(date, what applies from that date, which systems, source)`` for the EU AI Act (Regulation (EU)
2024/1689), with the high-risk dates as moved by the Digital Omnibus agreement. Checked on
:data:`TIMELINE_CHECKED`; an agreement is not yet the law, so read the Official Journal before relying on it."""



def _day(day):
    return f"{day.day} {day:%b %Y}"


HIGH_RISK_DATES = "high-risk: " + ", ".join(f"{_day(day)} ({systems})" for day, _, systems, _ in AI_ACT_TIMELINE
                                            if systems.startswith("Annex"))
APPLIES = {"GDPR": "since 25 May 2018", "NIST AI RMF": "voluntary (version 1.0, January 2023)",
           ("EU AI Act", "Art. 4"): f"since {_day(AI_ACT_TIMELINE[1][0])}",
           ("EU AI Act", "Art. 5"): f"since {_day(AI_ACT_TIMELINE[1][0])}"}
"""When an item's provision applies: by ``(framework, ref)``, else by framework, else
:data:`HIGH_RISK_DATES` for the EU AI Act (every AI Act item of the course's checklist is a
high-risk requirement)."""


def ai_act_timeline(on=None):
    """The EU AI Act's dates of application as a table, and whether each applies ``on`` a day.

    Parameters
    ----------
    on : datetime.date or None
        The day to read the table on; defaults to :data:`TIMELINE_CHECKED`, the day the dates were
        checked.

    Returns
    -------
    pandas.DataFrame
        One row per date: ``from``, ``what applies``, ``systems``, ``source`` and ``on <day>``
        ("applies" or "not yet").

    Examples
    --------
    >>> t = ai_act_timeline()
    >>> t.loc[t["systems"] == "Annex III", "from"].item(), t.iloc[1, -1]
    ('2 Dec 2027', 'applies')
    """
    import pandas as pd

    on = TIMELINE_CHECKED if on is None else on
    if not isinstance(on, datetime.date):
        raise ParameterTypeError(f"on must be a datetime.date, got {on!r}")
    return pd.DataFrame([{"from": _day(day), "what applies": what, "systems": systems,
                          "source": source, f"on {on.isoformat()}": "applies" if day <= on else "not yet"}
                         for day, what, systems, source in AI_ACT_TIMELINE])


def applies_from(item):
    """When ``item``'s provision applies (see :data:`APPLIES`), or "-" if the course does not say."""
    found = APPLIES.get((item.framework, item.ref), APPLIES.get(item.framework))
    if found is None and item.framework == "EU AI Act":
        return HIGH_RISK_DATES
    return found or "-"


class MissingEvidence(MLSecError, ValueError):
    """Evidence that an item points at does not exist; ``missing`` lists ``(item, evidence, why)``."""

    def __init__(self, missing):
        self.missing = list(missing)
        n = len(self.missing)
        super().__init__(f"{n} piece{'s' if n != 1 else ''} of evidence {'are' if n != 1 else 'is'} missing: "
                         + "; ".join(f"{i.framework} {i.ref}: {why}" for i, _, why in self.missing))


@dataclass(frozen=True)
class Evidence:
    """Something the course produced, found when checked.

    ``kind`` and ``target``:

    * ``"file"``: a path, relative to the repository or absolute (e.g. a model card just written);
    * ``"function"``: a dotted name that imports, ``"mlsec_lessons.deployment.audit.verify_log"``;
    * ``"test"``: ``"tests/test_x.py::test_name"``, a test function defined in that file;
    * ``"section"``: ``"notebooks/07_secure_deployment.ipynb#5. The audit log"``, a heading that starts so.
    """

    kind: str
    target: str

    def __post_init__(self):
        if self.kind not in KINDS:
            raise InvalidParameterError(f"evidence kind must be one of {KINDS}, got {self.kind!r}")
        if not isinstance(self.target, str) or not self.target.strip():
            raise InvalidParameterError(f"evidence target must be a non-empty string, got {self.target!r}")
        separator = {"test": "::", "section": "#"}.get(self.kind)
        if separator and separator not in self.target:
            raise InvalidParameterError(f"{self.kind} evidence must look like 'file{separator}name', got {self.target!r}")

    def problem(self, root):
        """Why this evidence cannot be found under ``root``, or ``None`` if it is there."""
        if self.kind == "function":
            return _import_problem(self.target)
        path_part, _, name = self.target.partition({"test": "::", "section": "#"}.get(self.kind, "\0"))
        path = Path(path_part) if Path(path_part).is_absolute() else Path(root) / path_part
        if not path.is_file():
            return f"{self.kind} {self.target} does not exist" if self.kind == "file" else f"{path_part} does not exist"
        if self.kind == "test":
            name = name.split("[")[0]  # a parametrised id names the same function
            if not re.search(rf"^(async )?def {re.escape(name)}\(", path.read_text(), re.M):
                return f"{path_part} defines no test {name!r}"
        if self.kind == "section" and not _has_heading(path, name):
            return f"{path_part} has no section headed {name!r}"
        return None

    def __str__(self):
        return f"{self.kind}: {self.target}"


def _import_problem(dotted):
    parts = dotted.split(".")
    for i in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            if not hasattr(obj, attr):
                return f"function {dotted} does not exist ({'.'.join(parts[:i])} has no {attr!r})"
            obj = getattr(obj, attr)
        return None
    return f"function {dotted} does not exist (nothing in it imports)"


def _has_heading(notebook, prefix):
    cells = json.loads(Path(notebook).read_text())["cells"]
    for cell in cells:
        if cell["cell_type"] == "markdown":
            for line in "".join(cell["source"]).split("\n"):
                m = re.match(r"#+\s+(.*\S)", line)
                if m and m.group(1).startswith(prefix):
                    return True
    return False


@dataclass(frozen=True)
class Item:
    """One provision: what it asks for, its status, the evidence, and what the evidence does not cover."""

    framework: str
    ref: str
    requirement: str
    status: str
    evidence: tuple = field(default_factory=tuple)
    note: str = ""

    def __post_init__(self):
        object.__setattr__(self, "evidence", tuple(self.evidence))
        if self.status not in STATUSES:
            raise InvalidParameterError(f"{self.framework} {self.ref}: status must be one of {STATUSES}, got {self.status!r}")
        if not all(isinstance(e, Evidence) for e in self.evidence):
            raise InvalidParameterError(f"{self.framework} {self.ref}: evidence must be Evidence objects")
        if self.status == "not covered" and self.evidence:
            raise InvalidParameterError(f"{self.framework} {self.ref} is 'not covered' but lists evidence; "
                             "mark it 'partial' and say in the note what is missing")
        if self.status != "not covered" and not self.evidence:
            raise InvalidParameterError(f"{self.framework} {self.ref} is {self.status!r} without evidence; "
                             "point at what the course produced, or mark it 'not covered'")
        if self.status != "covered" and not self.note.strip():
            raise InvalidParameterError(f"{self.framework} {self.ref} is {self.status!r}: the note must say what is missing")


class Checklist:
    """A list of :class:`Item`; :meth:`check` and :meth:`render` look for every piece of evidence."""

    def __init__(self, items):
        self.items = list(items)
        if not self.items or not all(isinstance(i, Item) for i in self.items):
            raise InvalidParameterError("items must be a non-empty sequence of Item")

    def check(self, root=None):
        """Find every piece of evidence; raise :class:`MissingEvidence` naming all that are missing.

        Returns
        -------
        int
            The number of pieces of evidence found.
        """
        root = course.repo_root() if root is None else Path(root)
        missing = [(item, e, why) for item in self.items for e in item.evidence
                   for why in [e.problem(root)] if why is not None]
        if missing:
            raise MissingEvidence(missing)
        return sum(len(item.evidence) for item in self.items)

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame([{"framework": i.framework, "ref": i.ref, "requirement": i.requirement,
                              "status": i.status, "evidence": "; ".join(map(str, i.evidence)) or "-",
                              "not covered / note": i.note or "-", "applies": applies_from(i)}
                             for i in self.items])

    def counts(self):
        """Items per framework and status: what to read next, not a score."""
        df = self.to_frame()
        import pandas as pd

        return pd.crosstab(df["framework"], df["status"]).reindex(columns=list(STATUSES), fill_value=0)

    def render(self, root=None):
        """Markdown, after :meth:`check` has found every piece of evidence."""
        self.check(root)
        lines = ["| framework | provision | requirement | status | evidence (checked) | what it does not cover "
                 "| applies |", "|---|---|---|---|---|---|---|"]
        for i in self.items:
            evidence = "<br>".join(f"{e.kind} `{e.target}`" for e in i.evidence) or "—"
            status = f"**{i.status}**" if i.status == "not covered" else i.status
            lines.append(f"| {i.framework} | {i.ref} | {i.requirement} | {status} | {evidence} | {i.note or '—'} "
                         f"| {applies_from(i)} |")
        return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- the course's checklist
def course_checklist(*, model_card_file, audit_log_file, coverage_file):
    """GDPR, EU AI Act and NIST AI RMF items, with the course's evidence for each, or "not covered".

    Parameters
    ----------
    model_card_file, audit_log_file, coverage_file : path
        Artifacts of the run that this checklist documents: the model card (JSON), the audit log
        and the Security Coverage report (JSON). They are checked for existence like everything else.

    Returns
    -------
    Checklist
    """
    F, fn, T, S = (lambda t: Evidence("file", str(t))), (lambda t: Evidence("function", t)), \
        (lambda t: Evidence("test", t)), (lambda t: Evidence("section", t))
    card, log, cov = F(model_card_file), F(audit_log_file), F(coverage_file)
    nb07, nb09 = "notebooks/07_secure_deployment.ipynb", "notebooks/09_compliance_and_governance.ipynb"
    return Checklist([
        # ---- GDPR (Regulation (EU) 2016/679)
        Item("GDPR", "Art. 5(1)(c)", "data minimisation: process only the personal data needed", "partial",
             [fn("mlsec_lessons.deployment.server.AuditAndHeaders"), log,
              T("tests/test_server_audit.py::test_concurrent_requests_give_exactly_one_chained_entry_each")],
             "the audit log keeps the SHA-256 of each input, not the input; but it keeps subjects and times "
             "(personal data), and a hash of a guessable input is pseudonymous, not anonymous (Recital 26). "
             "The training data (digits) holds no personal data, so its minimisation is not examined"),
        Item("GDPR", "Art. 5(1)(e)", "storage limitation: keep personal data no longer than needed", "not covered",
             note="no retention period; the log is append-only and deleting old entries needs rotation with a "
                  "signed checkpoint, which the course does not implement"),
        Item("GDPR", "Art. 17", "right to erasure, applied to a trained model", "not covered",
             note="deleting a record from the data set leaves its influence in the weights; erasure means "
                  "retraining without it or machine unlearning (e.g. SISA), not implemented. DP bounds the "
                  "influence (lesson 04) but is not erasure; membership inference (lesson 05) measures it"),
        Item("GDPR", "Art. 22", "no decision based solely on automated processing with legal or similarly "
             "significant effects, unless an exception applies; then human intervention, the right to be heard "
             "and to contest (Art. 22(3))", "not covered",
             note="a fraud detector (lesson 10) that blocks a payment or an account by itself makes such a "
                  "decision. Fraud prevention may be authorised by law (Art. 22(2)(b), Recital 71), but the "
                  "safeguards remain: a person who reviews and can overturn the decision, and meaningful information "
                  "about the logic (Arts. 13-15). The course's server decides alone and routes nothing to a person"),
        Item("GDPR", "Art. 25", "data protection by design and by default", "partial",
             [fn("mlsec_lessons.privacy.dp_sgd.train_dp_sgd"), card,
              S("notebooks/04_differential_privacy.ipynb#4. Training with Poisson sampling")],
             "DP-SGD exists and is accounted, but the served model was trained without it (epsilon = inf on its card)"),
        Item("GDPR", "Art. 32", "security of processing: integrity, confidentiality, testing of controls", "covered",
             [fn("mlsec_lessons.deployment.artifacts.verify_dir"),
              fn("mlsec_lessons.deployment.artifacts.encrypt_file"),
              fn("mlsec_lessons.deployment.tls.self_signed_cert"), cov,
              T("tests/test_artifacts.py::test_any_added_removed_or_changed_file_is_named")],
             "the coverage report lists the controls that failed or do not exist (encryption at rest is not used "
             "by the served model)"),
        Item("GDPR", "Art. 35", "data protection impact assessment", "not covered",
             note="an organisational assessment of a specific processing; nothing in the course writes one"),
        # ---- EU AI Act (Regulation (EU) 2024/1689)
        Item("EU AI Act", "Art. 6, Annex III", "risk classification", "not covered",
             note="the class follows from the intended use, not from the model: the same classifier is minimal "
                  "risk sorting digits and high risk scoring credit (Annex III 5(b)); the course classifies no use"),
        Item("EU AI Act", "Art. 9", "risk management system over the life cycle", "not covered",
             note="a documented, repeated process; the course supplies measurements such a process can use "
                  "(threat taxonomy in lesson 00, the model card, the coverage report), not the process"),
        Item("EU AI Act", "Art. 10", "data governance: provenance, examination for bias and errors", "partial",
             [fn("mlsec_lessons.cache.fingerprint"), card,
              S("notebooks/11_poisoning_and_backdoors.ipynb#3. Finding the poison")],
             "the card records the training set's fingerprint, and lesson 11 screens for poisoning, but the "
             "served model's data were not screened and no bias examination is done"),
        Item("EU AI Act", "Art. 11, Annex IV", "technical documentation", "partial",
             [fn("mlsec_lessons.governance.model_card.ModelCard"), card],
             "the model card covers performance, robustness, privacy and the artifact; Annex IV also asks for "
             "the system's purpose, design choices, human oversight and the risk management system"),
        Item("EU AI Act", "Art. 12", "record-keeping: automatic logs of events over the system's lifetime", "covered",
             [fn("mlsec_lessons.deployment.audit.AuditLog"), fn("mlsec_lessons.deployment.audit.verify_log"),
              fn("mlsec_lessons.governance.audit_query.query"), log, S(f"{nb07}#5. The audit log"),
              T("tests/test_audit_log.py::test_modified_entry_is_named")],
             "whoever holds the audit key can rewrite the log; entries are not shipped to append-only storage, "
             "and no retention period is set (Art. 19 asks providers to keep logs at least six months)"),
        Item("EU AI Act", "Art. 13", "transparency and instructions for use for deployers", "partial",
             [card], "the card states intended use and limitations; full instructions for use are not written"),
        Item("EU AI Act", "Art. 14", "human oversight", "not covered",
             note="no review of predictions, no override or stop control; the server only logs"),
        Item("EU AI Act", "Art. 15", "accuracy, robustness and cybersecurity, with declared metrics", "covered",
             [fn("mlsec_lessons.governance.measure.robust_accuracy"), fn("mlsec_lessons.attacks.pgd"),
              fn("mlsec_lessons.defenses.adversarial_train"), card, cov,
              S("notebooks/03_adversarial_training.ipynb#2. Adversarial training"),
              T("tests/test_attacks.py::test_pgd_at_least_as_strong_as_art")],
             "robustness is measured for one threat model (white-box L-inf PGD at one eps); Art. 15(5) also "
             "names data poisoning (lesson 11), model flaws and confidentiality attacks (lessons 05, 08)"),
        Item("EU AI Act", "Art. 72", "post-market monitoring", "not covered",
             note="this deployment runs no monitors. Lesson 08 builds drift, adversarial-input and extraction "
                  "(PRADA) monitors that write alerts to the audit log, and the capstone serves with them; no "
                  "post-market monitoring plan (Art. 72(3)) is written, and no one is assigned to the alerts"),
        # ---- NIST AI RMF 1.0 (NIST AI 100-1)
        Item("NIST AI RMF", "GOVERN", "policies, roles and accountability for AI risk", "not covered",
             note="organisational; the release policy used in lesson 09 is an example, not a governance process"),
        Item("NIST AI RMF", "MAP", "context, intended use and risks identified", "partial",
             [S("notebooks/00_course_map.ipynb#The threat model"), card],
             "threats are mapped to lessons and the card states the intended use; no impact assessment"),
        Item("NIST AI RMF", "MEASURE", "risks measured with documented methods (MEASURE 2.5, 2.7, 2.10)", "covered",
             [fn("mlsec_lessons.governance.measure.membership"), fn("mlsec_lessons.privacy_attacks.lira.lira_online"),
              card, cov, S(f"{nb09}#1. A model card")],
             "each measurement is one attack at one budget on one data set, with its sample size"),
        Item("NIST AI RMF", "MANAGE", "risks prioritised, treated and monitored; incidents handled", "partial",
             [fn("mlsec_lessons.governance.coverage.measure"), cov],
             "the coverage report lists the open gaps; nobody is assigned to them and there is no incident response"),
    ])
