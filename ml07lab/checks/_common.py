"""What every checker shares: one failure format, one pass line, safe calls."""
from __future__ import annotations

from typing import Any, Callable, NoReturn

import numpy as np
import torch


class ExerciseError(AssertionError):
    """The learner's answer is wrong; the message says where, and gives a hint."""


def _fail(ex: str, what: str, hint: str) -> NoReturn:
    raise ExerciseError(f"FAIL Exercise {ex}: {what}\n   Hint: {hint}")


def _passed(ex: str, msg: str) -> None:
    print(f"PASS Exercise {ex}: {msg}")


def _short(x: Any) -> str:
    """A one-line view of a test input, for error messages."""
    if isinstance(x, torch.Tensor):
        return f"tensor of shape {tuple(x.shape)}" if x.numel() > 8 else f"tensor({x.tolist()})"
    if isinstance(x, np.ndarray):
        return f"array of shape {x.shape}" if x.size > 8 else f"array({np.round(x, 3).tolist()})"
    return repr(x)


def _call(ex: str, fn: Callable, *args: Any, hint: str) -> Any:
    """Call the learner's function; a crash becomes one clear message with the inputs."""
    if not callable(fn):
        _fail(ex, f"expected a function, got {type(fn).__name__}.", "pass the function itself, without ().")
    try:
        return fn(*args)
    except (NotImplementedError, ExerciseError):
        raise
    except Exception as e:  # the learner's bug: say where, keep the traceback chained
        shown = ", ".join(_short(a) for a in args)
        raise ExerciseError(f"FAIL Exercise {ex}: your function raised {type(e).__name__}: {e}\n"
                            f"   (called as {getattr(fn, '__name__', 'fn')}({shown}))\n   Hint: {hint}") from e


def _number(ex: str, value: Any, what: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        _fail(ex, f"{what} should be one number, but your function returned {_short(value)}.",
              "return a Python float, e.g. float(np.mean(...)).")
