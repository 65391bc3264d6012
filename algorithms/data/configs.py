"""Typed configuration of data preparation, parsed once at the edge.

Every entrance (``train``, ``tune``, ``workflow``, the dialog, the graphical model) turns its
parameters into a :class:`DataConfig`; the core checks the values here, once, and hands
:meth:`DataConfig.prepare_kwargs` to :func:`dataset.prepare` (through ``tuning.DataCache`` or
``train_job``). The defaults are the configuration measured best over varied physics
(docs/skill.md): the networks learn the correction (``residual``) to the ``adaptive`` classical
anchor, validated on held-out areas (``space``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Dict, Mapping, Optional

from ..errors import DeformCastError
from .features import ANCHORS, TARGETS, VALIDATIONS


@dataclass(frozen=True)
class DataConfig:
    """How training windows are made from a stack."""

    #: what the networks learn: ``residual`` (the correction to the anchor) or ``increment``
    target: str = "residual"
    #: the classical forecast of the residual target: a baseline name or ``adaptive`` (:mod:`anchors`)
    baseline: str = "adaptive"
    #: validation windows: ``space`` (held-out areas) or ``time`` (the period before the test period)
    validation: str = "space"
    #: step dates of the classical fits: ``auto`` (detected in the stack, :mod:`step_detect`), known dates
    #: (comma list, a CSV/TXT file or a sequence), or ``none``; each date enters the fits of the pixels
    #: whose history shows the step (:func:`step_detect.pixel_steps`)
    steps: Any = "auto"

    def __post_init__(self):
        for name, allowed in (("target", TARGETS), ("baseline", ANCHORS), ("validation", VALIDATIONS)):
            v = getattr(self, name)
            if v not in allowed:
                label = {"target": "TARGET", "baseline": "ANCHOR", "validation": "VALIDATION"}[name]
                raise DeformCastError(f"{label} '{v}': valid values are {', '.join(allowed)}.")
        if self.steps is None or (isinstance(self.steps, str) and not self.steps.strip()):
            object.__setattr__(self, "steps", "auto")          # empty: the default, detected
        elif isinstance(self.steps, str) and self.steps.strip().lower() in ("none", "off", "no"):
            object.__setattr__(self, "steps", None)
        elif isinstance(self.steps, str) and self.steps.strip().lower() != "auto":
            from .features import _steps

            _steps(self.steps)          # a wrong date or a missing file is named here, before any reading

    @classmethod
    def from_mapping(cls, values: Optional[Mapping[str, Any]] = None) -> "DataConfig":
        """From keyword values (``prepare_kwargs`` of the core API); missing or None -> the default.
        Keys that are not data-preparation settings are refused with their names."""
        values = dict(values or {})
        names = {f.name for f in fields(cls)}
        extra = {k: v for k, v in values.items() if k not in names}
        passthrough = {k: extra.pop(k) for k in list(extra) if k in PASSTHROUGH}
        if extra:
            raise DeformCastError(f"Unknown data-preparation setting(s): {', '.join(sorted(extra))}; valid: "
                                  f"{', '.join(sorted(names | set(PASSTHROUGH)))}.")
        cfg = cls(**{k: v for k, v in values.items() if k in names and v is not None})
        object.__setattr__(cfg, "_passthrough", passthrough)
        return cfg

    def prepare_kwargs(self) -> Dict[str, Any]:
        """The keywords of :func:`dataset.prepare` this configuration sets."""
        out = asdict(self)
        out.update(getattr(self, "_passthrough", {}) or {})
        return out


#: lower-level :func:`dataset.prepare` keywords the core API also accepts unchanged (tests, benchmarks)
PASSTHROUGH = ("n_val", "n_test", "baseline_years", "max_eval_samples", "stride", "spatial_holdout",
               "holdout_block", "neighbourhood_k", "fourier", "block_rows", "val_fraction")

#: the data preparation of every entrance (the measured-best configuration, docs/skill.md)
DEFAULT_DATA = DataConfig()
