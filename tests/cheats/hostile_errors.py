# exceptions that are hard to report (KeyboardInterrupt, one whose __str__ raises, exit()), and
# output that is not text
import os
import sys

sys.stdout.buffer.write(b"\xff\xfe not UTF-8 \xc3\x28\n" * 1000)
sys.stdout.flush()
os.write(2, b"\x80\x81 on stderr too\n")


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
