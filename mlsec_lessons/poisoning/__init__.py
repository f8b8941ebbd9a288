"""Training-time attacks and their defenses (lesson 11; OWASP ML02, ML07, ML08, ML10).

* ``label_flipping``: random and targeted label flips, the accuracy curve they give, and a CNN trained on them
* ``backdoor``: a trigger and ART's ``PoisoningAttackBackdoor``; clean accuracy and attack success rate
* ``clean_label``: a clean-label backdoor (Turner et al., 2019) with ART's ``PoisoningAttackCleanLabelBackdoor``:
  every poisoned label is correct; a k-NN label audit that catches the dirty-label kind
* ``defenses``: ART's activation clustering and spectral signatures, precision and recall of what they flag,
  retraining on what is left
* ``neural_cleanse``: Neural Cleanse (Wang et al., 2019), the smallest trigger for each class and its anomaly index
* ``strip``: STRIP (Gao et al., 2019), flagging triggered inputs at run time by the entropy of superimposed copies
* ``transfer``: a backdoored pretrained extractor that survives fine-tuning a new head (ML07)
* ``model_poisoning``: a backdoor written into the weights by fine-tuning, which only an integrity check sees (ML10)
* ``skewing``: poisoning through a model's own feedback loop, and a retraining gate (ML08)

Signed prediction responses (ML09) live with the other deployment controls, in
:mod:`mlsec_lessons.deployment.response_signing`.
"""
from .backdoor import add_trigger, backdoor_success_rate, poison_backdoor, train_backdoored
from .clean_label import label_audit, poison_clean_label, train_clean_label
from .defenses import detect_poison, detection_scores, retrain_without
from .label_flipping import flip_labels, flipping_curve, train_flipped
from .model_poisoning import implant_backdoor, weight_change
from .neural_cleanse import anomaly_index, reverse_triggers
from .skewing import simulate_feedback_loop
from .strip import strip_detect, strip_entropy
from .transfer import fine_tune, pretrain, retargeted_asr, split_tasks, trigger_class

__all__ = ["add_trigger", "backdoor_success_rate", "poison_backdoor", "train_backdoored", "label_audit",
           "poison_clean_label", "train_clean_label", "detect_poison",
           "detection_scores", "retrain_without", "flip_labels", "flipping_curve", "train_flipped", "implant_backdoor",
           "weight_change", "simulate_feedback_loop", "anomaly_index", "reverse_triggers", "strip_detect",
           "strip_entropy", "fine_tune", "pretrain", "retargeted_asr", "split_tasks",
           "trigger_class"]
