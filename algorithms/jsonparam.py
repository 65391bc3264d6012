"""JSON-object parameters (HPARAMS, SEARCH_SPACE ...): a dict, a JSON text, or a file holding one."""
from __future__ import annotations

import json
import os
from typing import Any, Dict, Mapping

from .errors import DeformCastError


def json_object_param(value, name: str, example: str, not_object: str) -> Dict[str, Any]:
    """``value`` -> dict; empty/None -> {}. Bad JSON or a non-object raises DeformCastError:
    ``"<name> is not valid JSON (...). <example>"`` or ``not_object``."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    text = str(value).strip()
    if not text:
        return {}
    if os.path.isfile(text):
        with open(text, encoding="utf-8") as fh:
            text = fh.read()
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise DeformCastError(f"{name} is not valid JSON ({e.msg} at character {e.pos}). {example}") from None
    if not isinstance(obj, dict):
        raise DeformCastError(not_object)
    return obj
