"""On-demand functions the tests declare features over (imported by their path, as a
project's own module would be)."""

import numpy as np


def mix(
    amount: np.ndarray, count: np.ndarray, rate: np.ndarray, label: np.ndarray, flag: np.ndarray
) -> dict[str, object]:
    """Numbers, strings and booleans, nulls on every side."""
    return {
        "scaled": amount * rate + count,
        "label_size": [None if text is None else len(text) for text in label],
        "flag_or_big": [
            None if f is None else bool(f) or bool(a > 100)
            for f, a in zip(flag, amount, strict=True)
        ],
        "label_upper": [None if text is None else text.upper() for text in label],
    }


def fails_on_13(amount: np.ndarray) -> dict[str, np.ndarray]:
    if (amount == 13).any():
        raise ValueError("unlucky amount")
    return {"out": amount}


def one_short(amount: np.ndarray) -> dict[str, np.ndarray]:
    return {"out": amount[:-1]}


def words(amount: np.ndarray) -> dict[str, list[str]]:
    return {"out": ["many" if a > 10 else 1.5 for a in amount]}
