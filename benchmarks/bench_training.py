"""The course's trainer (``models.fit_epochs``) against Keras' ``model.fit``, same model, data and epochs.

Each row builds a fresh model from the same seed and trains it both ways: Keras' ``fit`` (shuffled,
``verbose=0``, no callbacks), then ``fit_epochs`` (one compiled epoch per call). The times include
each trainer's start-up (tracing), since every lesson pays it once per model. Held-out accuracy is
there to show that the faster loop trains as well: the two shuffle differently, so the accuracies
differ by a run's noise, not by design.
"""
import time

import mlsec_lessons

mlsec_lessons.quiet()
import keras  # noqa: E402

from mlsec_lessons import data, models  # noqa: E402
from mlsec_lessons.llm import corpus, memorization  # noqa: E402
from mlsec_lessons.llm import model as language  # noqa: E402

REPEATS = 2


def _cases():
    """(label, build the model, x_train, y_train, sample_weight, x_test, y_test, epochs, batch size)."""
    digits, cancer = data.load_digits(), data.load_breast_cancer()
    for arch, d in [("small_cnn", digits), ("mlp", digits), ("mlp", cancer), ("logistic", cancer)]:
        yield (f"{arch} on {d.name} ({len(d.x_train)} rows), 30 epochs",
               lambda arch=arch, d=d: models.compile_for_training(models.build(arch, d.input_shape, d.n_classes)),
               d.x_train, d.y_train, None, d.x_test, d.y_test, 30, 64)
    ids, _ = memorization.canary_training_set(512, memorization.COUNTS, seed=0)
    x, y, w = language.next_token_targets(ids, corpus.vocabulary().pad_id)

    def transformer():
        model = language.transformer(len(corpus.vocabulary()), context=x.shape[1])
        model.compile(optimizer=keras.optimizers.Adam(3e-3),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=True)
        return model

    yield (f"lesson 13's transformer on the canary set ({len(x)} rows, weighted tokens), 5 epochs",
           transformer, x, y, w, None, None, 5, 32)


def _seconds(train, *args, **kwargs):
    start = time.perf_counter()
    train(*args, **kwargs)
    return time.perf_counter() - start


def run():
    rows = []
    for label, build, x, y, w, x_test, y_test, epochs, batch in _cases():
        keras_s, ours_s, keras_acc, ours_acc = [], [], None, None
        for _ in range(REPEATS):
            mlsec_lessons.seed_everything(0)
            peer = build()
            keras_s.append(_seconds(peer.fit, x, y, sample_weight=w, epochs=epochs, batch_size=batch, shuffle=True,
                                    verbose=0))
            mlsec_lessons.seed_everything(0)
            ours = build()
            ours_s.append(_seconds(models.fit_epochs, ours, x, y, sample_weight=w, epochs=epochs, batch_size=batch,
                                   seed=0, progress=False))
            if x_test is not None:
                keras_acc, ours_acc = (f"{models.accuracy(m, x_test, y_test):.3f}" for m in (peer, ours))
        k, o = min(keras_s), min(ours_s)
        rows.append([label, f"{k:.2f}", f"{o:.2f}", f"{k / o:.1f}", keras_acc or "-", ours_acc or "-"])
    return {
        "title": "The course's trainer (models.fit_epochs) vs Keras' model.fit, same models and data",
        "columns": ["model and data", "Keras fit (s)", "fit_epochs (s)", "speed-up", "Keras fit: test accuracy",
                    "fit_epochs: test accuracy"],
        "rows": rows,
        "notes": (f"Best of {REPEATS} runs, each a fresh model from seed 0, start-up (tracing) included. Adam 1e-3 "
                  "(3e-3 and XLA for the transformer, as lesson 13 trains it), sparse cross-entropy on logits. "
                  "Keras' fit builds a tf.data pipeline and traces its train step for every new model and runs "
                  "callbacks and metrics on every batch; fit_epochs runs a whole epoch as one tf.function (the "
                  "XLA-compiled transformer: one XLA step per batch). The "
                  "two draw their shuffles differently, so the accuracies differ by a run's noise."),
    }
