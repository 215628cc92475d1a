import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from lymphonet.config import dump_config, load_config, parse_overrides
from lymphonet.errors import InputError


@dataclass(frozen=True)
class Inner:
    lr: float = 1e-3
    sizes: tuple[int, ...] = (8, 16)
    device: Literal["auto", "cpu", "cuda"] = "auto"


@dataclass(frozen=True)
class Outer:
    name: str = "run"
    seed: int = 0
    out: Path = Path("runs")
    inner: Inner = field(default_factory=Inner)
    note: str | None = None


def test_defaults_and_yaml(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("seed: 3\ninner:\n  lr: 0.01\n  sizes: [1, 2, 3]\n")
    cfg = load_config(Outer, path)
    assert cfg.seed == 3 and cfg.inner.lr == 0.01 and cfg.inner.sizes == (1, 2, 3)
    assert cfg.name == "run" and cfg.inner.device == "auto"


def test_unknown_key_is_an_error_naming_file_and_key(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("inner:\n  learning_rate: 0.1\n")
    with pytest.raises(InputError) as err:
        load_config(Outer, path)
    assert "learning_rate" in str(err.value) and "config.inner" in str(err.value)
    assert "c.yaml" in str(err.value)


def test_wrong_type_and_literal_rejected():
    with pytest.raises(InputError, match="expected an integer"):
        load_config(Outer, overrides=["seed=abc"])
    with pytest.raises(InputError, match="must be one of"):
        load_config(Outer, overrides=["inner.device=tpu"])
    with pytest.raises(InputError, match="expected a number"):
        load_config(Outer, overrides=["inner.lr=true"])


def test_overrides_parse_yaml_values():
    cfg = load_config(Outer, overrides=["inner.lr=3e-4", "inner.sizes=[4, 5]", "note=hi"])
    assert cfg.inner.lr == pytest.approx(3e-4) and cfg.inner.sizes == (4, 5)
    assert cfg.note == "hi"
    assert parse_overrides(["a.b.c=1"]) == {"a": {"b": {"c": 1}}}
    with pytest.raises(InputError, match="key.sub=value"):
        parse_overrides(["novalue"])


def test_round_trip(tmp_path):
    cfg = load_config(Outer, overrides=["seed=7", "inner.sizes=[2]"])
    dump_config(cfg, tmp_path / "r.yaml")
    assert load_config(Outer, tmp_path / "r.yaml") == cfg


def test_frozen():
    cfg = load_config(Outer)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.seed = 1  # type: ignore[misc]
