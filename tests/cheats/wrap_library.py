# ex0 as thin wrappers around the library
from mlsec_lessons import metrics


def attack_success_rate(*args):
    return metrics.attack_success_rate(*args)


def privacy_loss(*args):
    return metrics.privacy_loss(*args)
