"""Settings kept once in the user's config file: `sreval config set/unset/show`, and the order in which a setting
is taken (flag, environment, config file, default)."""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path

import pytest

from sreval import settings
from sreval.cli import main
from tests.cli_helpers import error_of

ENV_VARS = [s.env for s in settings.SETTINGS.values()]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No sreval variable set; XDG folders under tmp_path (the config folder is the conftest's)."""
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def config_path(home: Path) -> Path:
    return home / "xdg-config" / "sreval" / "config.toml"


def test_the_config_file_is_in_the_xdg_config_folder(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings.config_file() == config_path(home)
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(home / "h"))
    assert settings.config_file() == home / "h" / ".config" / "sreval" / "config.toml"


def test_flag_beats_environment_beats_config_file_beats_default(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    default = home / "data" / "sreval" / "datasets"
    assert settings.data_root() == default and settings.resolve("data-root").source == "default"
    assert main(["config", "set", "data-root", "bench"]) == 0  # relative to the folder it was set in
    assert settings.data_root() == home / "bench"
    assert settings.resolve("data-root").source == "config file"
    monkeypatch.setenv("SREVAL_DATA_ROOT", str(home / "env"))
    assert settings.data_root() == home / "env"
    assert settings.data_root(home / "flag") == home / "flag"
    monkeypatch.delenv("SREVAL_DATA_ROOT")
    assert main(["config", "unset", "data-root"]) == 0
    assert settings.data_root() == default
    capsys.readouterr()


def test_every_setting_is_read_from_the_config_file(home: Path) -> None:
    for key in settings.SETTINGS:
        value = "sqlite:////x/r.sqlite" if key == "db" else str(home / key)
        assert main(["config", "set", key, value]) == 0
    assert settings.data_root() == home / "data-root"
    assert settings.training_root() == home / "training-root"
    assert settings.assets_dir() == home / "assets-dir"
    assert settings.db_url() == "sqlite:////x/r.sqlite"
    assert settings.cache_dir() == home / "cache"
    assert settings.study_root() == home / "studies"
    assert settings.zoo_dirs() == [home / "zoo"]
    with config_path(home).open("rb") as f:
        assert set(tomllib.load(f)) == set(settings.SETTINGS)


def test_the_file_is_written_whole_and_private_and_keeps_odd_characters(home: Path) -> None:
    odd = home / 'a "quoted" \\ folder ä'
    assert main(["config", "set", "cache", str(odd)]) == 0
    assert main(["config", "set", "zoo", f"{home / 'z1'}{os.pathsep}{home / 'z2'}"]) == 0
    assert settings.cache_dir() == odd
    assert settings.zoo_dirs() == [home / "z1", home / "z2"]
    assert stat.S_IMODE(config_path(home).stat().st_mode) == 0o600
    assert [p.name for p in config_path(home).parent.iterdir()] == ["config.toml"]  # no temporary file left


def test_show_names_each_source_and_masks_a_password(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["config", "set", "db", "postgresql+psycopg2://me:s3cret@host/db"]) == 0
    assert "s3cret" not in capsys.readouterr().out
    monkeypatch.setenv("SREVAL_CACHE", str(home / "env-cache"))
    assert main(["config", "show", "--data-root", str(home / "flag")]) == 0
    out = capsys.readouterr().out
    assert "s3cret" not in out and "postgresql+psycopg2://me:***@host/db  [config file" in out
    lines = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert set(lines) == set(settings.SETTINGS)
    assert lines["data-root"].endswith("[flag (--data-root)]")
    assert lines["cache"].endswith("[environment (SREVAL_CACHE)]")
    assert lines["studies"].endswith("[default]")


def test_an_unknown_key_or_a_bad_value_is_one_error(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "unknown setting 'data_root'; the settings are: data-root" in error_of(
        ["config", "set", "data_root", "x"], capsys
    )
    assert "unknown setting 'nope'" in error_of(["config", "unset", "nope"], capsys)
    assert "db must be a database URL" in error_of(["config", "set", "db", "results.sqlite"], capsys)
    (home / "file").write_text("x")
    assert "cache must be a folder" in error_of(["config", "set", "cache", str(home / "file")], capsys)
    assert "must not be empty" in error_of(["config", "set", "studies", " "], capsys)
    assert not config_path(home).exists()


def test_a_broken_config_file_is_one_error_naming_it(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config_path(home).parent.mkdir(parents=True)
    config_path(home).write_text('data-root = "unterminated\n')
    assert f"cannot read the config file {config_path(home)}" in error_of(["config", "show"], capsys)
    config_path(home).write_text('data_root = "/x"\n')
    assert "unknown setting 'data_root' (the settings are" in error_of(["config", "show"], capsys)
    config_path(home).write_text("db = 3\n")
    assert "db must be a non-empty string, got 3" in error_of(["config", "show"], capsys)
