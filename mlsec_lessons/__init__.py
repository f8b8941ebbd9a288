"""mlsec-lessons: reference implementations for a hands-on course in ML security.

Each module holds one concept:

* ``data``: the bundled datasets (digits, breast cancer, synthetic fraud), seeded splits
* ``models``: the small Keras models the lessons share and a trainer that caches weights
* ``cache``: where trained artifacts live, and the keys that name them
* ``metrics``: ASR, MRS, Privacy Loss, Security Coverage and robustness curves
* ``art_bridge``: the course's models wrapped for ART, correctly
* ``attacks``: FGSM and PGD (L-inf, L2, targeted) as compiled loops, and the same attacks through ART
* ``defenses``: adversarial training, preprocessing defenses with the adaptive attacks that break them,
  detection, AutoAttack evaluation
* ``privacy``: differential privacy: mechanisms, DP-SGD from scratch, accounting (dp_accounting), diffprivlib models
* ``privacy_attacks``: membership inference (loss threshold, ART, LiRA), reconstruction, privacy auditing
* ``deployment``: a real model server (JWT, rate limits, validation, headers, TLS), signed and encrypted
  artifacts, a tamper-evident audit log
* ``poisoning``: training-time attacks: label flipping, backdoors (ART) and their detection, a backdoor that
  survives transfer learning, model poisoning, model skewing through a feedback loop
* ``theft``: model extraction over HTTP (Copycat, Jacobian augmentation, ART) and the PRADA detector
* ``monitoring``: live-traffic monitors (adversarial inputs, drift) whose alerts go to the audit log, and a report
* ``applications``: the source's three application cases (fraud, healthcare, perception), measured
* ``federated``: federated learning on Flower (FedAvg, SecAgg+, client-level DP) and pairwise masking from scratch
* ``llm``: a small transformer the course trains on a synthetic chat corpus (a secret, documents, tools)
* ``governance``: audit-log queries, model cards from measurements, Security Coverage from live checks, a
  compliance checklist
* ``plotting``: the figures the lessons draw
* ``grading`` and ``stubs``: the grader and the student stubs generated from the solutions
* ``reproducibility``: one seeding helper, and quiet framework logging
"""
import os

# TensorFlow reads these when it is first imported, so they must be set before any lesson
# imports it; setdefault leaves a student's own choice alone.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

from .reproducibility import quiet, seed_everything  # noqa: E402

__version__ = "0.1.0"
__all__ = ["quiet", "seed_everything", "__version__"]
