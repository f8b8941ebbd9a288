"""Splitting one dataset among federated clients: IID, or skewed by label (non-IID).

Real federations are non-IID: a hospital sees its own patients, a phone its owner's typing. The
Dirichlet split (Hsu et al. 2019) draws each class's share per client from Dirichlet(alpha):
a small ``alpha`` gives each client a few classes, a large one approaches IID.
"""
import numpy as np

from ..errors import InvalidParameterError
from ..validation import check_int, check_real


def _check(n_records, num_clients, min_size):
    check_int(num_clients, "num_clients", min_value=1)
    if num_clients * min_size > n_records:
        raise InvalidParameterError(f"{n_records} records cannot give {num_clients} clients {min_size} records each")


def iid_partition(n_records, num_clients, seed=0):
    """Shuffle ``range(n_records)`` and deal it into ``num_clients`` near-equal parts.

    Returns
    -------
    list of ndarray
        One array of record indices per client.

    Examples
    --------
    >>> [len(p) for p in iid_partition(10, 3)]
    [4, 3, 3]
    """
    _check(n_records, num_clients, 1)
    order = np.random.default_rng(seed).permutation(n_records)
    return [np.sort(part) for part in np.array_split(order, num_clients)]


def dirichlet_partition(y, num_clients, alpha=0.5, seed=0, min_size=10):
    """Split record indices by label skew: client shares of each class ~ Dirichlet(alpha).

    Parameters
    ----------
    y : array-like of int, shape (n,)
        The labels.
    num_clients : int
    alpha : float, default=0.5
        Concentration; smaller is more skewed.
    seed : int, default=0
    min_size : int, default=10
        Redraw until every client holds at least this many records, so that none is empty.

    Returns
    -------
    list of ndarray
        One sorted array of record indices per client; together they cover every record once.
    """
    y = np.asarray(y)
    if y.ndim != 1:
        raise InvalidParameterError(f"y must be one label per record, got shape {y.shape}")
    check_real(alpha, "alpha", min_value=0, include_boundaries="neither")
    _check(len(y), num_clients, min_size)
    rng = np.random.default_rng(seed)
    for _ in range(1000):
        parts = [[] for _ in range(num_clients)]
        for label in np.unique(y):
            members = rng.permutation(np.flatnonzero(y == label))
            shares = rng.dirichlet(np.full(num_clients, alpha))
            cuts = (np.cumsum(shares)[:-1] * len(members)).astype(int)
            for client, chunk in enumerate(np.split(members, cuts)):
                parts[client].extend(chunk)
        if min(len(p) for p in parts) >= min_size:
            return [np.sort(np.asarray(p, dtype=int)) for p in parts]
    raise InvalidParameterError(f"no Dirichlet({alpha}) split in 1000 draws gave every client {min_size} records; "
                     "raise alpha or lower min_size")


def partition(y, num_clients, scheme="iid", alpha=0.5, seed=0):
    """:func:`iid_partition` or :func:`dirichlet_partition` by name (``"iid"`` or ``"dirichlet"``)."""
    if scheme == "iid":
        return iid_partition(len(y), num_clients, seed)
    if scheme == "dirichlet":
        return dirichlet_partition(y, num_clients, alpha, seed)
    raise InvalidParameterError(f"unknown scheme {scheme!r}; use 'iid' or 'dirichlet'")


def label_counts(y, parts, n_classes=None):
    """A (clients, classes) table of how many records of each class each client holds."""
    y = np.asarray(y)
    n_classes = int(y.max()) + 1 if n_classes is None else n_classes
    return np.stack([np.bincount(y[p], minlength=n_classes) for p in parts])
