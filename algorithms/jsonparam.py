"""JSON-object parameters (HPARAMS, SEARCH_SPACE ...): a dict, a JSON text, or a file holding one."""
from __future__ import annotations

import json
import math
import os
from typing import Any, Dict, Mapping

from .errors import DeformCastError


class _NotFinite(ValueError):
    pass


def _refuse_constant(name: str):
    def f(token: str):
        raise _NotFinite(token)
    return f


def _non_finite(obj, path: str = ""):
    """The path of the first NaN/infinite number inside ``obj`` (a dict given directly), or None."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return path or "(value)"
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            p = _non_finite(v, f"{path}.{k}" if path else str(k))
            if p:
                return p
    if isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            p = _non_finite(v, f"{path}[{i}]")
            if p:
                return p
    return None


def json_object_param(value, name: str, example: str, not_object: str) -> Dict[str, Any]:
    """``value`` -> dict; empty/None -> {}. Bad JSON or a non-object raises DeformCastError:
    ``"<name> is not valid JSON (...). <example>"`` or ``not_object``. NaN and Infinity (which
    Python's JSON reader accepts) are refused: no setting may be a non-finite number."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        bad = _non_finite(value)
        if bad:
            raise DeformCastError(f"{name}: '{bad}' is not a finite number. {example}")
        return dict(value)
    text = str(value).strip()
    if not text:
        return {}
    if os.path.isfile(text):
        with open(text, encoding="utf-8") as fh:
            text = fh.read()
    try:
        obj = json.loads(text, parse_constant=_refuse_constant(name))
    except _NotFinite as e:
        raise DeformCastError(
            f"{name}: {e} is not a number a setting can take (give finite numbers only). {example}") from None
    except json.JSONDecodeError as e:
        raise DeformCastError(f"{name} is not valid JSON ({e.msg} at character {e.pos}). {example}") from None
    if not isinstance(obj, dict):
        raise DeformCastError(not_object)
    bad = _non_finite(obj)  # e.g. 1e999, read as infinity
    if bad:
        raise DeformCastError(f"{name}: '{bad}' is not a finite number. {example}")
    return obj
