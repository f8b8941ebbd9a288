"""What the course's result records share: a frozen dataclass shows itself as a one-row table."""
import dataclasses


class OneRowFrame:
    """Mixin for a frozen dataclass of results: :meth:`to_frame` shows its fields as one row.

    Examples
    --------
    >>> @dataclasses.dataclass(frozen=True)
    ... class Rates(OneRowFrame):
    ...     tpr: float
    ...     fpr: float
    >>> Rates(0.9, 0.05).to_frame(index="detector")
              tpr   fpr
    detector  0.9  0.05
    """

    __slots__ = ()

    def to_frame(self, index=None):
        """One row, a column per field; ``index`` labels the row (a model's name, to stack several
        with ``pd.concat``)."""
        import pandas as pd

        return pd.DataFrame([dataclasses.asdict(self)], index=None if index is None else [index])
