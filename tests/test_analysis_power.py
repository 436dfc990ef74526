"""The number of raters a study needs (`power`): power by simulation, and the rater model it draws from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from analysis_helpers import synthetic_study

import sreval.analysis.power as power_module
import sreval.study.simulate as simulate_module
from sreval.analysis.power import rater_model_from_ratings, raters_needed, simulated_power
from sreval.errors import SrevalError
from sreval.study import open_study_store
from sreval.study.rater_model import MIN_INCONSISTENCY, RaterModel, rate
from sreval.study.simulate import synthetic_study as synthetic_study_in_store
from sreval.vocabulary import HIGHEST_SCORE, LOWEST_SCORE


def test_power_grows_with_raters_and_delta_and_holds_alpha() -> None:
    common: dict[str, Any] = {"images": 10, "sims": 120, "seed": 1}
    assert simulated_power(6, delta=0.0, **common) <= 0.06  # right-direction rejections under H0: about α/2
    weak, strong = simulated_power(3, delta=0.2, **common), simulated_power(12, delta=0.2, **common)
    assert weak < strong
    assert simulated_power(3, delta=0.6, **common) > weak
    mos_pairs = simulated_power(6, delta=0.3, pairing="image-mos", **common)
    assert 0 < mos_pairs < 1

    result = raters_needed(0.3, images=10, sims=60, seed=2)
    assert result.n_raters is not None
    curve = result.curve.set_index("n_raters")["power"]
    assert curve[result.n_raters] >= 0.8 and all(curve[n] < 0.8 for n in curve.index if n < result.n_raters)
    assert raters_needed(0.3, images=10, sims=60, seed=2).curve.equals(result.curve)  # seeded
    hopeless = raters_needed(0.05, images=2, sims=20, max_raters=4, pairing="image-mos")
    assert hopeless.n_raters is None and list(hopeless.curve["n_raters"]) == [2, 4]
    with pytest.raises(SrevalError, match="delta must be"):
        raters_needed(0.0)

def test_pilot_rater_model() -> None:
    model = rater_model_from_ratings(synthetic_study(raters=8, images=4), "pilot")
    assert len(model.inconsistencies) == 8 and 0.1 < model.bias_sd < 0.8 and "8 raters" in model.source
    rng = np.random.default_rng(0)
    _, upsilon = model.draw(rng, (1000,))
    assert set(np.round(upsilon, 12)) <= set(np.round(model.inconsistencies, 12))
    assert RaterModel().draw(rng, (5,))[1].min() >= 0.05


def test_rate_rounds_half_up_and_clips_to_the_scale() -> None:
    assert rate(3.0, 0.2, 0.5, 0.6).item() == 4.0  # 3.0 + 0.2 + 0.3 = 3.5 rounds up
    assert rate(2.4, 0.0, 1.0, 0.0).item() == 2.0
    assert (rate(0.0, -1.0, 1.0, 0.0).item(), rate(9.0, 1.0, 1.0, 0.0).item()) == (LOWEST_SCORE, HIGHEST_SCORE)
    assert rate(50.0, 0.0, 1.0, 0.0, (0.0, 100.0)).item() == 50.0


def test_simulated_raters_and_power_draw_from_one_rater_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The study's simulated raters and the power analysis use the one model of `sreval.study.rater_model`: the
    same functions, and the same seed gives the same raters through both paths."""
    assert simulate_module.RaterModel is RaterModel and power_module.RaterModel is RaterModel
    assert simulate_module.rate is rate and power_module.rate is rate

    calls = {"simulate": 0, "power": 0}

    def counting(path: str) -> Any:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            calls[path] += 1
            return rate(*args, **kwargs)

        return wrapped

    monkeypatch.setattr(simulate_module, "rate", counting("simulate"))
    monkeypatch.setattr(power_module, "rate", counting("power"))
    with open_study_store(f"sqlite:///{tmp_path / 'study.sqlite'}") as store:
        (tmp_path / "stimuli").mkdir()
        synthetic_study_in_store(store, "sim", tmp_path / "stimuli", items=8, seed=1)
        result = simulate_module.simulate(store, "sim", raters=3, workers=2, seed=5, bias_sd=0.7, inconsistency_sd=0.3)
    assert calls["simulate"] == result.ratings  # every simulated score comes from `rate`
    simulated_power(4, delta=0.3, images=5, sims=10, seed=2)
    assert calls["power"] == 2  # the scores of method A and of method B

    # Rater i of a simulation seeded s is the model's draw from the stream [s, 1, i]; the power analysis draws all
    # of its raters from one stream, the same numbers element by element.
    model = RaterModel(bias_sd=0.7, inconsistency_sd=0.3)
    for index, rater in enumerate(result.raters):
        bias, inconsistency = model.draw(np.random.default_rng([5, 1, index]))
        assert (rater.bias, rater.inconsistency) == (float(bias), float(inconsistency))
    many_bias, many_upsilon = model.draw(np.random.default_rng(11), (4,))
    one = np.random.default_rng(11)
    assert many_bias.tolist() == [float(one.normal(0.0, 0.7)) for _ in range(4)]
    assert many_upsilon.tolist() == [abs(float(one.normal(0.0, 0.3))) + MIN_INCONSISTENCY for _ in range(4)]
