"""Map clinic structure names ("Lt Lung", "LUNG_L", "PTV70") to canonical organs.

Rules (explicit, so that a report can say exactly what happened):

1. **Normalisation.** Before matching, a name is lower-cased and spaces, ``_``, ``-``, ``.`` and
   ``/`` are removed: ``"Lung_L"``, ``"lung l"`` and ``"LUNG-L"`` all read ``"lungl"``.
2. **Matching.** Plain aliases (normalised the same way) win over ``re:`` patterns; patterns must
   match the whole normalised name; among patterns the first organ in the file wins. Every
   canonical name is an alias of itself.
3. **Combining.** Several sources that match one organ are OR-combined into one mask (RightParotid +
   LeftParotid -> ``parotids``; PTV56 + PTV63 + PTV70 -> ``target``) and listed in
   :attr:`MappingReport.combined`.
4. **Keeping sources.** For organs listed under ``keep_sources`` (default: ``target``) the source
   masks also stay under their original names, so per-level targets (PTV70 vs PTV56) survive.
5. **Never dropping silently.** Unmatched structures are kept under their original names (or dropped
   with ``keep_unmatched=False``) and always listed in :attr:`MappingReport.unmatched`.
6. **Paired organs.** When both sides of a pair (:data:`lymphonet.organs.PAIRED`) exist and the
   combined organ does not, it is derived as their OR (``lungs = lung_left | lung_right``). With only
   one side the combined organ is *not* derived by default (a one-sided "lungs" would bias the mean
   lung dose): the report notes the missing side, and ``partial_pairs=True`` derives it anyway.

User files: YAML with keys ``organs`` (organ -> list of aliases), optional ``extends: default``
(add to the default lists), ``replace`` (organs whose default aliases are dropped first),
``keep_sources`` and ``extra_names`` (non-canonical output names the file may use, e.g. ``larynx``).
Unknown keys and unknown organ names are errors.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lymphonet.errors import InputError
from lymphonet.io.volume import StructureSet
from lymphonet.organs import CANONICAL_ORGANS, PAIRED

DEFAULT_MAP_PATH = Path(__file__).resolve().parents[1] / "resources" / "structure_map.yaml"
_TOP_LEVEL_KEYS = {"extends", "organs", "replace", "keep_sources", "extra_names"}
_SEPARATORS = re.compile(r"[\s_\-./]+")


def normalise_name(name: str) -> str:
    """Lower-case ``name`` and remove spaces, ``_``, ``-``, ``.`` and ``/``."""
    return _SEPARATORS.sub("", str(name).strip().lower())


@dataclass(frozen=True)
class MappingReport:
    """What :meth:`StructureMap.apply` did.

    Attributes:
        matched: Source name -> canonical organ.
        unmatched: Source names that matched no organ (kept or dropped, see ``apply``).
        combined: Canonical organ -> its sources, where more than one source was OR-combined.
        derived: Combined paired organ -> the sides it was derived from.
        empty: Output names with no voxel (listed in the output's ``.empty``).
        notes: Further remarks in words (e.g. a pair with one side missing).
    """

    matched: dict[str, str] = field(default_factory=dict)
    unmatched: tuple[str, ...] = ()
    combined: dict[str, tuple[str, ...]] = field(default_factory=dict)
    derived: dict[str, tuple[str, ...]] = field(default_factory=dict)
    empty: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def summary(self) -> str:
        """A few human-readable lines for logs and reports."""
        lines = [f"matched: {', '.join(f'{s} -> {c}' for s, c in self.matched.items()) or '-'}",
                 f"unmatched: {', '.join(self.unmatched) or '-'}"]
        lines += [f"combined {c} = OR({', '.join(s)})" for c, s in self.combined.items()]
        lines += [f"derived {c} = OR({', '.join(s)})" for c, s in self.derived.items()]
        if self.empty:
            lines.append(f"empty: {', '.join(self.empty)}")
        return "\n".join(lines + list(self.notes))


@dataclass(frozen=True)
class StructureMap:
    """Alias lists per canonical organ; build with :meth:`default` or :meth:`from_yaml`.

    Attributes:
        organs: Output organ name -> aliases (plain strings or ``"re:<pattern>"``), in priority order.
        keep_sources: Organs whose source masks are also kept under their original names.
        source: File the map came from (for error messages).
    """

    organs: dict[str, tuple[str, ...]]
    keep_sources: tuple[str, ...] = ("target",)
    source: str | None = None
    _exact: dict[str, str] = field(init=False, repr=False, compare=False)
    _patterns: tuple[tuple[re.Pattern, str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        exact: dict[str, str] = {}
        patterns: list[tuple[re.Pattern, str]] = []
        for organ, aliases in self.organs.items():
            for alias in (organ, *aliases):
                alias = str(alias)
                if alias.startswith("re:"):
                    try:
                        patterns.append((re.compile(alias[3:]), organ))
                    except re.error as err:
                        raise InputError(f"bad regular expression {alias!r}: {err}",
                                         file=self.source, field=organ) from None
                    continue
                key = normalise_name(alias)
                if exact.get(key, organ) != organ:
                    raise InputError(f"alias {alias!r} is listed for both {exact[key]!r} and "
                                     f"{organ!r}", file=self.source, field=organ)
                exact[key] = organ
        object.__setattr__(self, "_exact", exact)
        object.__setattr__(self, "_patterns", tuple(patterns))

    @classmethod
    def default(cls) -> StructureMap:
        """The map shipped in ``lymphonet/resources/structure_map.yaml`` (parsed once, then cached)."""
        return _default_map()

    @classmethod
    def from_yaml(cls, path: str | Path) -> StructureMap:
        """Load a map; ``extends: default`` adds its aliases to the default map."""
        import yaml

        path = Path(path)
        try:
            spec = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as err:
            raise InputError(f"cannot read structure map ({err})", file=path,
                             field="structure_map") from None
        return cls.from_dict(spec, source=str(path))

    @classmethod
    def from_dict(cls, spec: dict, *, source: str | None = None) -> StructureMap:
        """Build a map from the parsed YAML content (see the module docstring)."""
        if not isinstance(spec, dict):
            raise InputError("structure map must be a mapping", file=source, field="structure_map")
        unknown = set(spec) - _TOP_LEVEL_KEYS
        if unknown:
            raise InputError(f"unknown keys {sorted(unknown)}; allowed: {sorted(_TOP_LEVEL_KEYS)}",
                             file=source, field=min(unknown))
        extends = spec.get("extends")
        if extends not in (None, "default"):
            raise InputError(f"extends must be 'default', got {extends!r}", file=source,
                             field="extends")
        base = cls.default() if extends == "default" else None
        allowed = set(CANONICAL_ORGANS) | set(_as_list(spec.get("extra_names"), "extra_names",
                                                       source))
        organs: dict[str, tuple[str, ...]] = dict(base.organs) if base else {}
        for organ in _as_list(spec.get("replace"), "replace", source):
            organs[organ] = ()
        user = spec.get("organs") or {}
        if not isinstance(user, dict):
            raise InputError("organs must map organ names to alias lists", file=source,
                             field="organs")
        for organ, aliases in user.items():
            if organ not in allowed:
                raise InputError(f"unknown organ {organ!r}; use a canonical name or declare it "
                                 "under extra_names", file=source, field=str(organ))
            organs[organ] = organs.get(organ, ()) + tuple(_as_list(aliases, organ, source))
        keep = spec.get("keep_sources")
        keep_sources = (tuple(_as_list(keep, "keep_sources", source)) if keep is not None
                        else (base.keep_sources if base else ()))
        return cls(organs, keep_sources, source)

    def match(self, name: str) -> str | None:
        """Canonical organ for a clinic structure name, or None when nothing matches."""
        key = normalise_name(name)
        if key in self._exact:
            return self._exact[key]
        for pattern, organ in self._patterns:
            if pattern.fullmatch(key):
                return organ
        return None

    def apply(
        self,
        structures: StructureSet,
        *,
        keep_unmatched: bool = True,
        partial_pairs: bool = False,
    ) -> tuple[StructureSet, MappingReport]:
        """Rename and combine structures by this map.

        Args:
            structures: Masks with clinic names.
            keep_unmatched: Keep unmatched structures under their original names (default); with
                False they are left out of the result but still listed in the report.
            partial_pairs: Derive a combined paired organ from one side when the other is missing.

        Returns:
            ``(mapped, report)``: masks on the same grid named by canonical organ (plus kept
            sources and unmatched names), and a :class:`MappingReport`.
        """
        sources: dict[str, list[str]] = {}
        matched: dict[str, str] = {}
        unmatched: list[str] = []
        for name in [*structures.names, *structures.empty]:
            organ = self.match(name)
            if organ is None:
                unmatched.append(name)
            else:
                matched[name] = organ
                sources.setdefault(organ, []).append(name)
        masks: dict[str, np.ndarray] = {}
        empty: list[str] = []
        for organ, names in sources.items():
            present = [structures[n] for n in names if n in structures.masks]
            if present:
                masks[organ] = np.logical_or.reduce(present) if len(present) > 1 else present[0]
            else:
                empty.append(organ)
        derived, notes = self._derive_pairs(masks, empty, partial_pairs)
        for organ in self.keep_sources:
            for name in sources.get(organ, ()):
                if name != organ and name in structures.masks:
                    masks[name] = structures[name]
                elif name != organ:
                    empty.append(name)
        if keep_unmatched:
            masks.update({n: structures[n] for n in unmatched if n in structures.masks})
            empty += [n for n in unmatched if n not in structures.masks]
        report = MappingReport(
            matched=matched,
            unmatched=tuple(unmatched),
            combined={o: tuple(n) for o, n in sources.items() if len(n) > 1},
            derived=derived,
            empty=tuple(empty),
            notes=tuple(notes),
        )
        return StructureSet(masks, structures.grid, tuple(empty), structures.source), report

    @staticmethod
    def _derive_pairs(masks: dict[str, np.ndarray], empty: list[str], partial: bool):
        """Add combined paired organs (in place); return (derived, notes)."""
        derived: dict[str, tuple[str, ...]] = {}
        notes: list[str] = []
        for combined, sides in PAIRED.items():
            if combined in masks or combined in empty:
                continue
            have = tuple(s for s in sides if s in masks)
            if not have:
                continue
            if len(have) < len(sides) and not partial:
                missing = [s for s in sides if s not in masks]
                notes.append(f"{combined} not derived: only {', '.join(have)} present "
                             f"({', '.join(missing)} missing); pass partial_pairs=True to use it")
                continue
            masks[combined] = np.logical_or.reduce([masks[s] for s in have])
            derived[combined] = have
        return derived, notes


@functools.lru_cache(maxsize=1)
def _default_map() -> StructureMap:
    return StructureMap.from_yaml(DEFAULT_MAP_PATH)


def _as_list(value, what: str, source: str | None) -> list[str]:
    """A YAML value that must be a list of strings (None -> empty)."""
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, list):
        raise InputError(f"{what} must be a list of strings, got {value!r}", file=source,
                         field=what)
    return [str(v) for v in value]
