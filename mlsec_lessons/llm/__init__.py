"""A small language model the course trains itself (lesson 13): the target of LLM and agent attacks.

* ``corpus``: a seeded synthetic chat corpus (an assistant keeping a secret, documents, tool calls)
  with role tokens, and its word-level :class:`~mlsec_lessons.llm.corpus.Vocabulary`
* ``model``: a decoder-only transformer in Keras (74k parameters, context 64), trained and
  cached like the course's other models
* ``generate``: greedy decoding, temperature sampling and best-of-N through one compiled step, and
  sequence log-probabilities
* ``output_handling``: the model's reply pasted into HTML or SQL (OWASP LLM05), and the escaping and
  bound parameters that stop it
* ``memorization``: canaries in the training set, their exact exposure, extraction by beam search, and
  the same model trained with DP-SGD (Carlini et al. 2019, "The Secret Sharer")

``from mlsec_lessons.llm import generate`` gives the function; the module is
``mlsec_lessons.llm.generate`` in ``sys.modules`` (``from mlsec_lessons.llm.generate import compiled``).
"""
from .corpus import Dialogue, Vocabulary, dialogue, dialogues, held_out, system_prompt, training_set, vocabulary
from .generate import generate, generate_batch, sequence_log_prob, trace_count
from .memorization import (
    CanaryRun,
    ExtractedSecrets,
    canary_exposures,
    canary_text,
    canary_training_set,
    candidate_log_probs,
    exposure,
    exposure_from_scores,
    extract,
    insert_canaries,
    make_canaries,
    rank_from_scores,
    train_canary_model,
    train_private_canary_model,
)
from .model import train_assistant, train_language_model, transformer

__all__ = ["Dialogue", "Vocabulary", "dialogue", "dialogues", "held_out", "system_prompt", "training_set",
           "vocabulary", "generate", "generate_batch", "sequence_log_prob", "trace_count", "train_assistant",
           "train_language_model", "transformer", "CanaryRun", "ExtractedSecrets", "canary_exposures", "canary_text",
           "canary_training_set", "candidate_log_probs", "exposure", "exposure_from_scores", "extract",
           "insert_canaries", "make_canaries", "rank_from_scores", "train_canary_model", "train_private_canary_model"]
