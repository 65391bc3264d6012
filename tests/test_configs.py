"""Typed data-preparation configuration: parsed once at the edge, wrong values named with the fix."""
import pytest

from deformcast.algorithms.learn import tuning
from deformcast.algorithms.data.configs import DEFAULT_DATA, DataConfig
from deformcast.algorithms.errors import DeformCastError


def test_defaults_are_the_measured_best_and_every_entrance_uses_them():
    assert (DEFAULT_DATA.target, DEFAULT_DATA.baseline, DEFAULT_DATA.validation) == ("residual", "adaptive", "space")
    assert tuning.MODEL_DEFAULTS == {"target": "residual", "baseline": "adaptive", "validation": "space",
                                     "steps": "auto"}
    assert DataConfig.from_mapping({"target": None, "steps": ""}).prepare_kwargs() == {
        "target": "residual", "baseline": "adaptive", "validation": "space", "steps": "auto"}
    assert DataConfig(steps=None).steps == "auto" and DataConfig(steps="None").steps is None
    with pytest.raises(DeformCastError, match="STEPS: 'autoo' is not a date"):
        DataConfig(steps="autoo")


@pytest.mark.parametrize("kw, label", [({"target": "level"}, "TARGET"), ({"baseline": "magic"}, "ANCHOR"),
                                       ({"validation": "random"}, "VALIDATION")])
def test_wrong_values_are_named_with_the_valid_ones(kw, label):
    with pytest.raises(DeformCastError, match=f"{label} '.*': valid values are"):
        DataConfig(**kw)


def test_unknown_keys_are_refused_and_lower_level_ones_pass_through():
    with pytest.raises(DeformCastError, match="Unknown data-preparation setting.*anchor"):
        DataConfig.from_mapping({"anchor": "adaptive"})
    kw = DataConfig.from_mapping({"validation": "time", "n_val": 12, "steps": ["2019-03-01"]}).prepare_kwargs()
    assert kw["validation"] == "time" and kw["n_val"] == 12 and kw["steps"] == ["2019-03-01"]


def test_tune_job_refuses_a_bad_anchor_before_reading_anything(tmp_path):
    from deformcast.algorithms.data import synthetic

    files = synthetic.write_scene(str(tmp_path / "s"), seed=1, width=16, height=16, n_epochs=40)
    with pytest.raises(DeformCastError, match="ANCHOR 'magic'"):
        tuning.tune_job(files["stack"], str(tmp_path / "m"), "lstm", 2, n_trials=1, gate=False,
                        prepare_kwargs={"baseline": "magic"})
    assert not (tmp_path / "m").exists() or not any((tmp_path / "m").iterdir())
