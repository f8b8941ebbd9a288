# exceptions that are hard to report: KeyboardInterrupt, one whose __str__ raises, exit()
import sys


class Unprintable(Exception):
    def __str__(self):
        raise RuntimeError("no")


def attack_success_rate(*args):
    raise KeyboardInterrupt


def privacy_loss(*args):
    raise Unprintable()


def security_coverage(inventory):
    sys.exit(0)


def model_robustness_score(asr):
    if not 0 <= asr <= 1:
        raise ValueError(f"asr={asr!r} is not a rate")
    return 1.0 - asr
