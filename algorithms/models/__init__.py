"""The six forecasting architectures, by name, with their hyperparameters and ranges in one place.

Every model maps an encoded window ``X`` of shape ``(N, window, F)`` (any number ``F`` of input
channels produced by the coding strategies of :mod:`algorithms.data.dataset`) to all ``horizon`` future
steps at once, ``(N, horizon)`` (direct multi-output forecasting, no autoregressive roll-out, so
errors do not compound over the horizon and one forward pass gives the whole forecast).

Registry API (QGIS-free; importing this module does not import torch)::

    from algorithms.models import names, get_spec, build_model, resolve_hparams
    names()                       # ['lstm', 'gru', 'tcn', 'cnn_lstm', 'transformer', 'resnet_transformer']
    spec = get_spec("tcn")        # unknown name -> DeformCastError listing the valid names
    spec.defaults                 # hand-set architecture hyperparameters (dict)
    spec.space                    # list of Param(name, kind, low, high, choices, log): the TPE ranges
    hp = resolve_hparams("tcn", {"lr": 3e-3})   # defaults + training defaults + overrides (checked)
    model = build_model("tcn", n_features=F, window=W, horizon=H, hparams=hp)   # a torch.nn.Module

``TRAINING_DEFAULTS`` / ``TRAINING_SPACE`` hold the hyperparameters every architecture shares
(learning rate, weight decay, batch size, dropout, gradient clipping, samples per epoch, loss);
``DATA_SPACE`` holds the window length range for tuners that also search the window.
``Param.kind`` is ``"int"``, ``"float"`` or ``"categorical"``; for the numeric kinds ``low``/``high``
are inclusive bounds and ``log`` asks for log-uniform sampling; for ``"categorical"`` the
``choices`` tuple lists the values. A tuner turns these into ``trial.suggest_*`` calls.

Targets: the models are plain regressors. They learn whatever ``Y`` the data module hands them;
:mod:`algorithms.data.dataset` makes that the increment from the last input epoch (or the residual to
a classical forecast), scaled per horizon step, so no architecture has to learn where a pixel
already is. Dropout, where an architecture has several places for it, uses the one shared
``dropout`` value.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

from ..errors import DeformCastError


@dataclass(frozen=True)
class Param:
    """One searchable hyperparameter: ``(name, kind, low, high, choices, log)``."""

    name: str
    kind: str  # "int" | "float" | "categorical"
    low: Optional[float] = None
    high: Optional[float] = None
    choices: Optional[Tuple[Any, ...]] = None
    log: bool = False

    def as_tuple(self) -> tuple:
        if self.kind == "categorical":
            return (self.name, self.kind, self.choices, None, False)
        return (self.name, self.kind, self.low, self.high, self.log)

    def contains(self, value) -> bool:
        if self.kind == "categorical":
            return value in self.choices
        return self.low <= value <= self.high


@dataclass(frozen=True)
class ModelSpec:
    """An architecture: its name, a one-line description, defaults and search ranges."""

    name: str
    label: str
    description: str
    module: str  # sub-module of algorithms.models holding ``build(n_features, window, horizon, hp)``
    defaults: Dict[str, Any] = field(default_factory=dict)
    space: List[Param] = field(default_factory=list)

    def all_defaults(self) -> Dict[str, Any]:
        """Architecture defaults plus the shared training defaults."""
        d = dict(TRAINING_DEFAULTS)
        d.update(self.defaults)
        return d

    def all_space(self) -> List[Param]:
        """Architecture ranges plus the shared training ranges."""
        return list(self.space) + list(TRAINING_SPACE)


#: hyperparameters every architecture shares (the training loop reads them)
TRAINING_DEFAULTS: Dict[str, Any] = {
    "lr": 2e-3,              # AdamW learning rate (peak of the cosine schedule)
    "weight_decay": 1e-4,    # AdamW decoupled weight decay
    "batch_size": 256,
    "dropout": 0.1,
    "grad_clip": 1.0,        # max global gradient norm
    "samples_per_epoch": 8192,  # training windows drawn afresh (without replacement) each epoch; 0 = all
    "loss": "mse",           # "mse" or "huber" (on normalised values)
}

TRAINING_SPACE: List[Param] = [
    Param("lr", "float", 1e-4, 1e-2, log=True),
    Param("weight_decay", "float", 1e-6, 1e-2, log=True),
    Param("batch_size", "categorical", choices=(64, 128, 256, 512)),
    Param("dropout", "float", 0.0, 0.4),
    Param("grad_clip", "float", 0.1, 5.0, log=True),
]

#: the architecture every entrance (workflow, tune, train, the dialog, the graphical model) starts from:
#: measured as good as ``resnet_transformer`` in the delivered forecast on eight scenes of two generators,
#: two to three times faster to tune and many times faster to run (docs/skill.md, "Session 24")
DEFAULT_ARCHITECTURE = "lstm"

#: data-level range for tuners that also search the input window length (epochs)
DATA_SPACE: List[Param] = [Param("window", "int", 6, 30)]

_SPECS: Dict[str, ModelSpec] = {}


def _register(spec: ModelSpec) -> None:
    _SPECS[spec.name] = spec


_register(ModelSpec(
    "lstm", "LSTM",
    "Stacked LSTM over the window; the last hidden state feeds a linear head emitting all horizon steps.",
    "lstm",
    {"hidden": 32, "layers": 1},
    [Param("hidden", "categorical", choices=(16, 32, 64, 128)), Param("layers", "int", 1, 3)],
))
_register(ModelSpec(
    "gru", "GRU",
    "Stacked GRU over the window; the last hidden state feeds a linear head emitting all horizon steps.",
    "gru",
    {"hidden": 32, "layers": 1},
    [Param("hidden", "categorical", choices=(16, 32, 64, 128)), Param("layers", "int", 1, 3)],
))
_register(ModelSpec(
    "tcn", "TCN",
    "Temporal convolutional network: residual blocks of dilated causal 1-D convolutions "
    "(dilation 1, 2, 4, ...); the last time step feeds a linear head.",
    "tcn",
    {"channels": 32, "levels": 3, "kernel_size": 3},
    [Param("channels", "categorical", choices=(16, 32, 64)), Param("levels", "int", 2, 5),
     Param("kernel_size", "int", 2, 5)],
))
_register(ModelSpec(
    "cnn_lstm", "CNN-LSTM",
    "1-D convolutions extract local temporal features, an LSTM summarises them, a linear head "
    "emits all horizon steps.",
    "cnn_lstm",
    {"conv_channels": 32, "conv_layers": 1, "kernel_size": 3, "hidden": 32, "layers": 1},
    [Param("conv_channels", "categorical", choices=(16, 32, 64)), Param("conv_layers", "int", 1, 3),
     Param("kernel_size", "int", 2, 5), Param("hidden", "categorical", choices=(16, 32, 64, 128)),
     Param("layers", "int", 1, 2)],
))
_register(ModelSpec(
    "transformer", "Transformer",
    "Linear input embedding plus sinusoidal positional encoding, a Transformer encoder, and a "
    "head on the last token and the mean of all tokens.",
    "transformer",
    {"d_model": 32, "nhead": 2, "layers": 2, "ff_mult": 2},
    [Param("d_model", "categorical", choices=(16, 32, 64)), Param("nhead", "categorical", choices=(1, 2, 4)),
     Param("layers", "int", 1, 4), Param("ff_mult", "categorical", choices=(1, 2, 4))],
))
_register(ModelSpec(
    "resnet_transformer", "ResNet+Transformer",
    "Residual 1-D convolution stem (local, multi-scale temporal features) feeding a Transformer "
    "encoder (long-range dependencies); the paper's best architecture.",
    "resnet_transformer",
    {"d_model": 32, "nhead": 2, "layers": 2, "ff_mult": 2, "res_blocks": 2, "kernel_size": 3},
    [Param("d_model", "categorical", choices=(16, 32, 64)), Param("nhead", "categorical", choices=(1, 2, 4)),
     Param("layers", "int", 1, 4), Param("ff_mult", "categorical", choices=(1, 2, 4)),
     Param("res_blocks", "int", 1, 4), Param("kernel_size", "categorical", choices=(3, 5))],
))


def names() -> List[str]:
    """The architecture names, in the order of the paper's comparison."""
    return list(_SPECS)


def get_spec(name: str) -> ModelSpec:
    key = str(name).strip().lower()
    if key not in _SPECS:
        raise DeformCastError(
            f"Unknown architecture '{name}'. Valid architectures: {', '.join(_SPECS)}.")
    return _SPECS[key]


def resolve_hparams(name: str, overrides: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """Defaults of ``name`` (architecture + training) updated with ``overrides``.

    Unknown keys are refused with the list of valid ones; values are cast to the type of the
    default (int/float/bool/str) and checked for sanity (positive sizes, d_model divisible by nhead).
    """
    spec = get_spec(name)
    hp = spec.all_defaults()
    for k, v in dict(overrides or {}).items():
        if k not in hp:
            raise DeformCastError(
                f"Unknown hyperparameter '{k}' for {spec.name}. Valid keys: {', '.join(sorted(hp))}.")
        hp[k] = _cast(k, v, hp[k])
    _check(spec.name, hp)
    return hp


def _cast(key: str, value, default):
    try:
        if isinstance(default, bool):
            if isinstance(value, str):
                if value.strip().lower() in ("true", "1", "yes"):
                    return True
                if value.strip().lower() in ("false", "0", "no"):
                    return False
                raise ValueError(value)
            return bool(value)
        if isinstance(default, int):
            f = float(value)
            if f != int(f):
                raise ValueError(value)
            return int(f)
        if isinstance(default, float):
            return float(value)
        return str(value)
    except (TypeError, ValueError):
        raise DeformCastError(
            f"Hyperparameter '{key}' = {value!r} is not a valid {type(default).__name__} "
            f"(default {default!r}).") from None


def _check(name: str, hp: Dict[str, Any]) -> None:
    positive = ("hidden", "layers", "channels", "levels", "kernel_size", "conv_channels", "conv_layers",
                "d_model", "nhead", "ff_mult", "res_blocks", "batch_size")
    for k in positive:
        if k in hp and hp[k] < 1:
            raise DeformCastError(f"Hyperparameter '{k}' must be at least 1 (got {hp[k]}).")
    if name == "tcn" and hp["kernel_size"] < 2:
        raise DeformCastError("Hyperparameter 'kernel_size' of tcn must be at least 2.")
    if "d_model" in hp and hp["d_model"] % hp["nhead"]:
        raise DeformCastError(
            f"d_model ({hp['d_model']}) must be divisible by nhead ({hp['nhead']}); choose e.g. "
            f"nhead 1, 2 or 4 with d_model 32.")
    if not 0.0 <= hp["dropout"] < 1.0:
        raise DeformCastError(f"dropout must be in [0, 1) (got {hp['dropout']}).")
    if hp["lr"] <= 0 or hp["weight_decay"] < 0 or hp["grad_clip"] <= 0:
        raise DeformCastError("lr and grad_clip must be positive and weight_decay not negative.")
    if hp["samples_per_epoch"] < 0:
        raise DeformCastError("samples_per_epoch must be 0 (all windows) or positive.")
    if hp["loss"] not in ("mse", "huber"):
        raise DeformCastError(f"loss must be 'mse' or 'huber' (got '{hp['loss']}').")


def build_model(name: str, n_features: int, window: int, horizon: int,
                hparams: Optional[Mapping[str, Any]] = None):
    """A freshly initialised ``torch.nn.Module`` for ``(N, window, n_features) -> (N, horizon)``.

    ``hparams`` may be partial; missing keys take the defaults. Seed torch before calling for
    repeatable initial weights.
    """
    spec = get_spec(name)
    hp = resolve_hparams(spec.name, hparams)
    if n_features < 1 or window < 1 or horizon < 1:
        raise DeformCastError(
            f"Cannot build {spec.name} for {n_features} input channels, window {window}, horizon "
            f"{horizon}: all must be at least 1.")
    mod = importlib.import_module(f"{__name__}.{spec.module}")
    return mod.build(spec.name, int(n_features), int(window), int(horizon), hp)


def count_parameters(model) -> int:
    return int(sum(p.numel() for p in model.parameters()))


__all__ = ["Param", "ModelSpec", "TRAINING_DEFAULTS", "TRAINING_SPACE", "DATA_SPACE", "names", "get_spec",
           "resolve_hparams", "build_model", "count_parameters"]
