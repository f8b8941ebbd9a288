"""mlsec-lessons: reference implementations for a hands-on course in ML security.

Each module holds one concept: ``data`` (bundled datasets), ``models`` (small Keras
models and a cached trainer), ``metrics`` (security metrics), ``grading`` (the
pytest-based grader) and ``stubs`` (student stubs generated from the solutions).
"""
import os

# TensorFlow reads these when it is first imported, so they must be set before any lesson
# imports it; setdefault leaves a student's own choice alone.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

from .reproducibility import quiet, seed_everything  # noqa: E402

__version__ = "0.1.0"
__all__ = ["quiet", "seed_everything", "__version__"]
