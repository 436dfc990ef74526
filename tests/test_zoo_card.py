"""The model card: one writer (`sreval.zoo.model_card`) for entries that are saved, interpolated or made from a
training run; callers give only the training and metrics sections."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from zoo_helpers import TINY, isolated_zoo, tiny

from sreval import zoo
from sreval.train.export import metrics_section, training_section

REPO = Path(__file__).resolve().parent.parent

SUMMARY: dict[str, Any] = {
    "recipe": {"name": "srresnet-mse", "generator": "srresnet", "losses": {"mse": 1.0}, "crop": 96,
               "degradation": "bicubic", "batch": 16, "lr": 0.0001, "milestones": [], "scale": 4,
               "generator_args": TINY},
    "sreval": "0.1.0", "torch": "2.x", "train_dir": "/data/T91", "train_images": 91, "skipped_images": 0,
    "steps": 2, "wall_s": 1.5, "device": "cpu", "world_size": 1,
    "validation": [{"dataset": "Set5", "psnr": 30.0, "ssim": 0.9, "n": 5}],
}


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return isolated_zoo(tmp_path, monkeypatch)


def test_saved_card_is_model_card_with_the_given_sections(root: Path) -> None:
    entry = zoo.save_model(tiny(0), "tiny", "srresnet", TINY, recipe="test", description="tiny test model",
                           training="Trained on nothing.", metrics="PSNR 1 dB.")
    card = entry.card_path.read_text()
    assert card == zoo.model_card(entry, zoo.count_parameters(entry), "Trained on nothing.", "PSNR 1 dB.")
    assert card.index("## Training\n\nTrained on nothing.") < card.index("## Metrics measured by sreval\n\nPSNR 1 dB.")
    assert f"| weights | `model.safetensors` (safetensors), sha256 `{entry.weights.sha256}` |" in card


def test_card_without_sections_says_what_is_missing(root: Path) -> None:
    entry = zoo.save_model(tiny(0), "tiny", "srresnet", TINY)
    card = entry.card_path.read_text()
    assert "Not recorded: training data, steps and time" in card and "Not measured yet." in card


def test_a_training_run_card_is_written_by_the_same_writer(root: Path) -> None:
    training, metrics = training_section(SUMMARY), metrics_section("run-model", SUMMARY)
    entry = zoo.save_model(tiny(0), "run-model", "srresnet", TINY, recipe="srresnet-mse", training=training,
                           metrics=metrics)
    card = entry.card_path.read_text()
    assert card == zoo.model_card(entry, zoo.count_parameters(entry), training, metrics)
    assert "| steps | 2 " in card and "/data/T91" in card and "| Set5 | 30.000 | 0.9000 | 5 |" in card
    assert "| architecture | `srresnet`" in card  # the same header table as every other card


def test_no_other_module_writes_a_card() -> None:
    writers = [p.relative_to(REPO).as_posix() for p in (REPO / "sreval").rglob("*.py")
               if "## Metrics measured by sreval" in p.read_text(encoding="utf-8")]
    assert writers == ["sreval/zoo/card.py"]
