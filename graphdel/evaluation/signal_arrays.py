"""The attack-signal arrays of the per-example privacy audit (:mod:`graphdel.evaluation.per_example`,
:mod:`graphdel.evaluation.ulira`): one row per model, one column per deleted example, checked with one-line
messages that name the argument."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from graphdel.errors import InvalidInputError


def signal_matrix(name: str, a: Any, *, min_models: int = 2) -> np.ndarray:
    """``a`` as a float64 ``[models, examples]`` array of finite numbers.

    Raises:
        InvalidInputError: ``a`` is not numeric or not 2-D, has fewer than ``min_models`` rows or no column,
            or holds NaN or inf (the message names ``name`` and the first bad model and example).
    """
    try:
        x = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{name} must be a numeric array [models, examples]: {exc}") from None
    if x.ndim != 2:
        raise InvalidInputError(f"{name} must be a 2-D array [models, examples], got shape {x.shape}")
    if x.shape[0] < min_models:
        raise InvalidInputError(f"{name} needs at least {min_models} models (rows), got {x.shape[0]} "
                                f"(shape {x.shape})")
    if x.shape[1] < 1:
        raise InvalidInputError(f"{name} needs at least 1 example (column), got shape {x.shape}")
    bad = ~np.isfinite(x)
    if bad.any():
        i, j = (int(v) for v in np.argwhere(bad)[0])
        raise InvalidInputError(f"{name} contains NaN or inf ({int(bad.sum())} values; first at model {i}, "
                                f"example {j})")
    return x


def same_examples(arrays: Sequence[tuple[str, np.ndarray]]) -> None:
    """Refuse ``(name, [models, examples])`` arrays whose numbers of examples (columns) differ from the
    first one's (:class:`InvalidInputError` naming both)."""
    first_name, first = arrays[0]
    for name, x in arrays[1:]:
        if x.shape[1] != first.shape[1]:
            raise InvalidInputError(f"{name} has {x.shape[1]} examples (shape {x.shape}) but {first_name} "
                                    f"has {first.shape[1]} (shape {first.shape}); columns must be the same "
                                    f"examples")
