"""Configuration: YAML files loaded into frozen dataclasses.

Rules (nnU-Net's lesson: options are config fields, not subclasses):

* Every option is a field of a frozen dataclass with a default; a YAML file sets some of them.
* Unknown keys are errors (a typo never silently falls back to a default), and so are values of the
  wrong type.
* ``--set a.b=c`` overrides any field from the command line; the value is parsed as YAML
  (``--set train.lr=3e-4``, ``--set data.sites=[lung,esophagus]``).
* No code in YAML: values are plain scalars, lists and mappings (``yaml.safe_load``), never ``exec``.

The generic machinery here works for any dataclass tree; the project's concrete configs live next
to the code that uses them.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from lymphonet.errors import InputError

T = TypeVar("T")


def from_dict(cls: type[T], data: dict[str, Any] | None, *, where: str = "config") -> T:
    """Build dataclass ``cls`` from a mapping, recursing into nested dataclasses.

    Args:
        cls: A (frozen) dataclass type.
        data: Mapping of field name -> value; missing fields keep their defaults.
        where: Dotted path used in error messages.

    Raises:
        InputError: On unknown keys or values that cannot be converted to the field type.
    """
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise InputError(f"expected a mapping, got {type(data).__name__}", field=where)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise InputError(
            f"unknown key(s) {unknown}; valid keys are {sorted(fields)}", field=where)
    hints = typing.get_type_hints(cls)
    kwargs = {name: _convert(hints[name], value, f"{where}.{name}") for name, value in data.items()}
    return cls(**kwargs)


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where=where)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, where)
            except InputError as err:
                errors.append(str(err))
        raise InputError(f"value {value!r} fits none of {tp}", field=where)
    if origin is typing.Literal:
        if value not in typing.get_args(tp):
            raise InputError(f"must be one of {list(typing.get_args(tp))}, got {value!r}",
                             field=where)
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise InputError(f"expected a list, got {value!r}", field=where)
        args = typing.get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise InputError(f"expected {len(args)} items, got {len(value)}", field=where)
            items = [_convert(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value))]
        else:
            item_tp = args[0] if args else Any
            items = [_convert(item_tp, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise InputError(f"expected a mapping, got {value!r}", field=where)
        key_tp, val_tp = typing.get_args(tp) or (Any, Any)
        return {_convert(key_tp, k, where): _convert(val_tp, v, f"{where}.{k}")
                for k, v in value.items()}
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise InputError(f"expected true/false, got {value!r}", field=where)
        return value
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads "3e-4" (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InputError(f"expected a number, got {value!r}", field=where)
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(f"expected an integer, got {value!r}", field=where)
        return value
    if tp is str:
        if not isinstance(value, str):
            raise InputError(f"expected a string, got {value!r}", field=where)
        return value
    if tp is Path:
        if not isinstance(value, (str, Path)):
            raise InputError(f"expected a path, got {value!r}", field=where)
        return Path(value)
    raise InputError(f"unsupported field type {tp}", field=where)  # pragma: no cover


def to_dict(config: Any) -> dict[str, Any]:
    """Plain-YAML-able mapping of a dataclass tree (tuples -> lists, paths -> str)."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, Path):
            return str(v)
        return v

    return plain(config)


def parse_overrides(overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Turn ``["a.b=1", "c=[x, y]"]`` into a nested mapping; values are parsed as YAML."""
    nested: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"override {item!r} must look like key.sub=value", field="--set")
        value = yaml.safe_load(raw) if raw.strip() else ""
        node = nested
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise InputError(f"override {item!r} conflicts with another", field="--set")
        node[parts[-1]] = value
    return nested


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge; ``update`` wins."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def load_config(cls: type[T], path: str | Path | None = None,
                overrides: list[str] | tuple[str, ...] = ()) -> T:
    """Load ``cls`` from a YAML file (optional) plus ``--set`` overrides.

    Raises:
        InputError: Naming the file and the dotted key of any unknown key or bad value.
    """
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        try:
            loaded = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as err:
            raise InputError(f"cannot read config: {err}", file=path) from err
        data = loaded or {}
    data = merge(data, parse_overrides(overrides))
    try:
        return from_dict(cls, data)
    except InputError as err:
        raise err.with_context(file=path) from None


def dump_config(config: Any, path: str | Path) -> None:
    """Write a dataclass tree as YAML that :func:`load_config` reads back to an equal object."""
    Path(path).write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
