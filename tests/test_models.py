"""The model registry and the six architectures (shapes, ranges, causality, refusal of bad names)."""
import numpy as np
import pytest

from deformcast.algorithms.errors import DeformCastError
from deformcast.algorithms.models import (DATA_SPACE, TRAINING_SPACE, build_model, count_parameters, get_spec,
                                          names, resolve_hparams)

SIX = ["lstm", "gru", "tcn", "cnn_lstm", "transformer", "resnet_transformer"]


def test_registry_has_the_six_architectures():
    assert names() == SIX
    from deformcast.processing_provider import base  # noqa: F401  (needs qgis; the enum must match)

    assert base.ARCHITECTURES == SIX


def test_unknown_architecture_lists_valid_names():
    with pytest.raises(DeformCastError) as e:
        get_spec("lstn")
    for n in SIX:
        assert n in str(e.value)


@pytest.mark.parametrize("name", SIX)
def test_defaults_lie_inside_the_search_space(name):
    spec = get_spec(name)
    hp = spec.all_defaults()
    for p in spec.all_space():
        assert p.name in hp, p.name
        assert p.contains(hp[p.name]), (p.name, hp[p.name])
        assert len(p.as_tuple()) == 5
    assert all(p.kind in ("int", "float", "categorical") for p in spec.all_space() + DATA_SPACE)
    assert {p.name for p in TRAINING_SPACE} <= set(hp)


def test_resolve_hparams_checks_keys_types_and_constraints():
    hp = resolve_hparams("tcn", {"lr": "0.003", "channels": 16.0})
    assert hp["lr"] == 0.003 and hp["channels"] == 16 and isinstance(hp["channels"], int)
    with pytest.raises(DeformCastError, match="Unknown hyperparameter 'hiden'.*hidden"):
        resolve_hparams("lstm", {"hiden": 8})
    with pytest.raises(DeformCastError, match="not a valid int"):
        resolve_hparams("lstm", {"hidden": 8.5})
    with pytest.raises(DeformCastError, match="divisible by nhead"):
        resolve_hparams("transformer", {"d_model": 30, "nhead": 4})
    with pytest.raises(DeformCastError, match="dropout"):
        resolve_hparams("gru", {"dropout": 1.5})


@pytest.mark.parametrize("name", SIX)
@pytest.mark.parametrize("n_features,window,horizon", [(1, 6, 1), (7, 13, 5)])
def test_any_channels_window_and_horizon(name, n_features, window, horizon):
    import torch

    torch.manual_seed(0)
    model = build_model(name, n_features, window, horizon, {"layers": 1} if "layers" in get_spec(name).defaults else {})
    assert count_parameters(model) > 0
    y = model(torch.randn(4, window, n_features))
    assert tuple(y.shape) == (4, horizon)
    assert torch.isfinite(y).all()


def test_tcn_is_causal():
    """Changing a late input epoch never changes the TCN representation of earlier epochs."""
    import torch

    torch.manual_seed(0)
    model = build_model("tcn", 2, 10, 3, {"dropout": 0.0}).eval()
    x = torch.randn(3, 10, 2)
    x2 = x.clone()
    x2[:, 7] += 5.0
    with torch.no_grad():
        h1 = model.blocks(x.transpose(1, 2))
        h2 = model.blocks(x2.transpose(1, 2))
    assert torch.equal(h1[:, :, :7], h2[:, :, :7])
    assert not torch.equal(h1[:, :, 7:], h2[:, :, 7:])


@pytest.mark.parametrize("name", ["transformer", "resnet_transformer"])
def test_prediction_does_not_depend_on_batch_companions(name):
    """No batch statistics: a pixel's forecast is the same whatever else is in the batch."""
    import torch

    torch.manual_seed(1)
    model = build_model(name, 3, 8, 2).eval()
    x = torch.randn(16, 8, 3)
    with torch.inference_mode():
        full = model(x)
        alone = model(x[5:6])
    assert np.allclose(full[5].numpy(), alone[0].numpy(), atol=1e-5)
