"""ESRGAN's network-interpolation curve end to end, on stand-ins: two external zoo entries whose asset files are in
the authors' layouts (random weights, small networks), `sreval interpolate --sweep`, `sreval run-benchmarks` on
Set5 with PSNR, SSIM, RMSE and NIQE, and `sreval plot pd`. The numbers it produces are not ESRGAN's and are not checked,
only that every step works on what the previous one wrote."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest
import torch
from esrgan_standins import external_entry, pin_standin, save_standin

from sreval import zoo
from sreval.assets import sha256_of
from sreval.cli import main

ALPHAS = (0.0, 0.4, 1.0)


@pytest.fixture
def standins(env: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Stand-ins for both official files (the PSNR one in the first release's layout, the GAN one in the 2019
    layout) pinned as the catalogue's assets, with zoo entries `psnr` and `gan` of their small size."""
    folder = env / "assets"
    save_standin(folder / "RRDB_PSNR_x4.pth", "sequential", seed=10, image_like=True)
    save_standin(folder / "RRDB_ESRGAN_x4.pth", "esrgan", seed=11, image_like=True)
    pin_standin(monkeypatch, "esrgan-psnr-official", folder / "RRDB_PSNR_x4.pth")
    pin_standin(monkeypatch, "esrgan-official", folder / "RRDB_ESRGAN_x4.pth")
    # NIQE's parameters from the shared data until they ship with the package
    monkeypatch.setenv("SREVAL_ASSETS", os.pathsep.join([str(folder), str(data_root.parent / "iqa")]))
    user_zoo = env / "zoo"
    external_entry(user_zoo, "psnr", "esrgan-psnr-official")
    external_entry(user_zoo, "gan", "esrgan-official")
    return user_zoo


def test_sweep_of_external_entries_to_the_pd_plane(
    standins: Path, env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep = ",".join(f"{a:g}" for a in ALPHAS)
    assert main(["interpolate", "psnr", "gan", "--sweep", sweep, "--name-prefix", "interp"]) == 0
    names = [zoo.sweep_name("interp", a) for a in ALPHAS]
    assert f"wrote 3 zoo models to {standins}: {', '.join(names)}" in capsys.readouterr().out

    psnr, gan = zoo.load_state_dict("psnr"), zoo.load_state_dict("gan")
    assert psnr.keys() == gan.keys() and len(psnr) == 2 * 30 + 12  # two blocks in our names, from both layouts
    for alpha, name in zip(ALPHAS, names, strict=True):
        entry = zoo.get_entry(name)
        assert entry.folder.parent == standins and entry.weights.status == "trained"
        assert entry.interpolation == zoo.Interpolation("psnr", "gan", alpha)
        blend = zoo.load_state_dict(name)
        for key, a in psnr.items():
            b = gan[key]
            torch.testing.assert_close(blend[key], (1 - alpha) * a + alpha * b, rtol=0, atol=1e-6)
            if alpha in (0.0, 1.0):
                assert torch.equal(blend[key], a if alpha == 0 else b), key  # the end points bit for bit
        card = entry.card_path.read_text(encoding="utf-8")
        for asset, file in (("esrgan-psnr-official", "RRDB_PSNR_x4.pth"), ("esrgan-official", "RRDB_ESRGAN_x4.pth")):
            # which file was blended: the asset's name alone does not say (it could be any installed copy)
            assert f"asset `{asset}`, file sha256 `{sha256_of(env / 'assets' / file)}`" in card

    out = env / "run"
    args = [
        "run-benchmarks",
        "--methods",
        ",".join(names),
        "--datasets",
        "set5",
        "--metrics",
        "psnr,ssim,rmse,niqe",
        "--tile",
        "0",
        "--out",
        str(out),
        "-q",
    ]
    assert main(args) == 0
    with (out / "summary.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["method"] for r in rows} == set(names)

    html = env / "pd.html"
    assert main(["plot", "pd", "--results", str(out), "--out", str(html)]) == 0
    page = html.read_text(encoding="utf-8")
    assert all(name in page for name in names)
