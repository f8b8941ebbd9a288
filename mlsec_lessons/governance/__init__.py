"""Compliance and governance: evidence from the course's own code (lesson 09).

* ``audit_query``: the server's audit log as a table, verified before any question is answered
* ``measure``: clean and robust accuracy, DP epsilon, membership TPR at low FPR, the artifact's hash
  and signature, each as a ``Measurement`` with its method, sample size and interval
* ``model_card``: a card filled only from measurements, as Markdown and JSON
* ``coverage``: Security Coverage from checks that run over an explicit inventory
* ``controls``: the checks of the course's deployment (requests, signatures, tampered copies)
* ``checklist``: GDPR, EU AI Act and NIST AI RMF items, each with evidence that exists, or "not covered"
* ``plots``: the audit timeline and the coverage chart

Not legal advice: code can show what a system does, not whether its use is lawful.
"""
from . import audit_query, checklist, controls, coverage, measure, model_card, plots
from .model_card import ModelCard

__all__ = ["audit_query", "checklist", "controls", "coverage", "measure", "model_card", "plots", "ModelCard"]
