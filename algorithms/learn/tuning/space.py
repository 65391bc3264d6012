"""The search space of a study: registry ranges, ``SEARCH_SPACE`` overrides, drawing a configuration."""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Dict, Mapping, Optional, Tuple

from ...errors import DeformCastError

DEFAULT_WINDOW = 12  #: the hand-set window of ``train`` (used by default configurations)


@dataclass(frozen=True)
class Dim:
    """One dimension of the search space: ``fixed`` value, ``categorical`` choices or a range."""

    name: str
    kind: str  # "fixed" | "categorical" | "int" | "float"
    low: Optional[float] = None
    high: Optional[float] = None
    log: bool = False
    step: Optional[float] = None
    choices: Optional[Tuple[Any, ...]] = None
    value: Any = None

    def contains(self, value) -> bool:
        if self.kind == "fixed":
            return value == self.value
        if self.kind == "categorical":
            return value in self.choices
        try:
            return self.low <= float(value) <= self.high
        except (TypeError, ValueError):
            return False

    def describe(self) -> str:
        if self.kind == "fixed":
            return f"{self.value!r} (fixed)"
        if self.kind == "categorical":
            return "one of " + ", ".join(repr(c) for c in self.choices)
        s = f"{self.kind} {self.low:g} .. {self.high:g}"
        if self.log:
            s += " (log)"
        if self.step:
            s += f" step {self.step:g}"
        return s


def encoding_key(value) -> str:
    """An encoding set as a canonical comma string ("none" for nothing)."""
    if value is None:
        return "none"
    items = value if isinstance(value, (list, tuple)) else str(value).replace("+", ",").split(",")
    items = sorted({str(i).strip().lower() for i in items if str(i).strip()} - {"none"})
    return ",".join(items) if items else "none"


def build_search_space(architecture: str, overrides=None, window: Optional[int] = None,
                 encodings=None, max_window: Optional[int] = None) -> Dict[str, Dim]:
    """The TPE search space of ``architecture`` (registry ranges + ``overrides``).

    ``window``: a fixed window length (else the registry's ``DATA_SPACE`` range, capped at
    ``max_window``); ``encodings``: the fixed encoding set (else ``none``); ``overrides``: a dict
    or JSON text (see module doc). Unknown names are refused with the list of valid ones.
    """
    from ...models import DATA_SPACE, get_spec

    spec = get_spec(architecture)
    defaults = spec.all_defaults()
    space: Dict[str, Dim] = {}
    for p in spec.all_space():
        if p.kind == "categorical":
            space[p.name] = Dim(p.name, "categorical", choices=tuple(p.choices))
        else:
            space[p.name] = Dim(p.name, p.kind, float(p.low), float(p.high), bool(p.log))
    if window:
        space["window"] = Dim("window", "fixed", value=int(window))
    else:
        for p in DATA_SPACE:
            if p.name == "window":
                hi = float(p.high) if max_window is None else float(max(min(p.high, max_window), p.low))
                space["window"] = Dim("window", "int", float(p.low), hi)
    space["encoding"] = Dim("encoding", "fixed", value=encoding_key(encodings))
    ov = parse_search_space(overrides)
    valid = sorted(set(defaults) | {"window", "encoding"})
    for name, spec_v in ov.items():
        if name not in valid:
            raise DeformCastError(
                f"SEARCH_SPACE: unknown name '{name}' for {spec.name}. Valid names: {', '.join(valid)}.")
        space[name] = _dim_from_json(name, spec_v, defaults.get(name))
    if "window" in space and space["window"].kind in ("int", "float") and max_window is not None:
        d = space["window"]
        if d.low > max_window:
            raise DeformCastError(
                f"SEARCH_SPACE: window range starts at {d.low:g} epochs but the stack allows at most "
                f"{max_window}; lower the window range or use a longer stack.")
        if d.high > max_window:   # a given range (e.g. the main job's) capped as the registry's is:
            space["window"] = replace(d, high=float(max_window))   # rather than failed trials
    if space["encoding"].kind == "categorical":
        space["encoding"] = Dim("encoding", "categorical",
                                choices=tuple(encoding_key(c) for c in space["encoding"].choices))
    elif space["encoding"].kind == "fixed":
        space["encoding"] = Dim("encoding", "fixed", value=encoding_key(space["encoding"].value))
    return space


def parse_search_space(value) -> Dict[str, Any]:
    from ...jsonparam import json_object_param

    return json_object_param(
        value, "SEARCH_SPACE",
        'Example: {"lr": {"low": 0.0001, "high": 0.01, "log": true}, "layers": 1, "batch_size": [64, 128]}',
        "SEARCH_SPACE must be a JSON object {name: value | [choices] | {low, high}}.")


def _dim_from_json(name: str, v, default) -> Dim:
    if isinstance(v, list):
        if not v:
            raise DeformCastError(f"SEARCH_SPACE: '{name}' has an empty list of choices.")
        return Dim(name, "categorical", choices=tuple(v))
    if isinstance(v, dict):
        if "choices" in v:
            return _dim_from_json(name, list(v["choices"]), default)
        if "value" in v:
            return Dim(name, "fixed", value=v["value"])
        if "low" not in v or "high" not in v:
            raise DeformCastError(
                f"SEARCH_SPACE: '{name}' needs 'low' and 'high' (or 'choices', or a plain value).")
        unknown = sorted(set(v) - {"low", "high", "log", "step", "type"})
        if unknown:
            raise DeformCastError(
                f"SEARCH_SPACE: '{name}' has the unknown key(s) {', '.join(unknown)}; a range takes low, high, "
                "and optionally log, step and type.")
        lo, hi = _range_number(name, "low", v["low"]), _range_number(name, "high", v["high"])
        if not lo <= hi:
            raise DeformCastError(f"SEARCH_SPACE: '{name}' has low {lo:g} > high {hi:g}.")
        kind = v.get("type") or ("int" if isinstance(default, int) and not isinstance(default, bool)
                                 and float(lo).is_integer() and float(hi).is_integer() else "float")
        if name == "window":
            kind = "int"
        if kind not in ("int", "float"):
            raise DeformCastError(f"SEARCH_SPACE: '{name}' type must be 'int' or 'float', not '{kind}'.")
        log = v.get("log", False)
        if not isinstance(log, bool):
            raise DeformCastError(f"SEARCH_SPACE: '{name}' log must be true or false, not {log!r}.")
        if log and lo <= 0:
            raise DeformCastError(f"SEARCH_SPACE: '{name}' log range needs low > 0.")
        step = v.get("step")
        if step is not None:
            step = _range_number(name, "step", step)
            if step <= 0 or step > hi - lo and hi > lo:
                raise DeformCastError(
                    f"SEARCH_SPACE: '{name}' step {step:g} must be positive and at most high - low ({hi - lo:g}).")
        if kind == "int" and not (float(lo).is_integer() and float(hi).is_integer()):
            raise DeformCastError(f"SEARCH_SPACE: '{name}' is a whole number; give whole low and high values.")
        return Dim(name, kind, lo, hi, log, float(step) if step else None)
    return Dim(name, "fixed", value=v)


def _range_number(name: str, key: str, v) -> float:
    """A finite number of a SEARCH_SPACE range (booleans and text refused, naming the entry)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
        raise DeformCastError(
            f"SEARCH_SPACE: '{name}' {key} is {json_text(v)}, not a number. Example: "
            f'{{"{name}": {{"low": 0.0001, "high": 0.01}}}}.')
    return float(v)


def json_text(v) -> str:
    import json

    try:
        return json.dumps(v)
    except (TypeError, ValueError):
        return repr(v)


def suggest(trial, space: Mapping[str, Dim]) -> Dict[str, Any]:
    """Draw one configuration from ``space`` through the Optuna ``trial``."""
    out: Dict[str, Any] = {}
    for name, d in space.items():
        if d.kind == "fixed":
            out[name] = d.value
        elif d.kind == "categorical":
            out[name] = trial.suggest_categorical(name, list(d.choices))
        elif d.kind == "int":
            step = int(d.step) if d.step else 1
            if d.log:
                out[name] = trial.suggest_int(name, int(d.low), int(d.high), log=True)
            else:
                out[name] = trial.suggest_int(name, int(d.low), int(d.high), step=step)
        else:
            if d.step and not d.log:
                out[name] = trial.suggest_float(name, d.low, d.high, step=d.step)
            else:
                out[name] = trial.suggest_float(name, d.low, d.high, log=d.log)
    return out


def default_config(architecture: str, space: Mapping[str, Dim], window_default: int) -> Dict[str, Any]:
    """The hand-set configuration of ``architecture`` expressed in the space's names."""
    from ...models import get_spec

    cfg = dict(get_spec(architecture).all_defaults())
    w = space.get("window")
    cfg["window"] = w.value if (w is not None and w.kind == "fixed") else int(window_default)
    e = space.get("encoding")
    cfg["encoding"] = e.value if (e is not None and e.kind == "fixed") else "none"
    for name, d in space.items():
        if d.kind == "fixed":
            cfg[name] = d.value
    return cfg


def split_config(architecture: str, cfg: Mapping[str, Any]) -> Tuple[int, str, Dict[str, Any]]:
    """``(window, encoding key, model hyperparameters)`` of a flat configuration."""
    from ...models import resolve_hparams

    hp = {k: v for k, v in cfg.items() if k not in ("window", "encoding")}
    return int(cfg["window"]), encoding_key(cfg.get("encoding")), resolve_hparams(architecture, hp)




_encoding_key = encoding_key  # the name older code imports
