"""ICRP-89 reference circulation as a balanced, directed flow network of blood compartments.

The compartment table (blood flow in % of cardiac output, blood content in % of total blood volume;
ICRP Publication 89, 2002, as tabulated for the HEDOS blood-dose model by Shin et al., Phys Med Biol
66:045003, 2021) ships as package data in ``lymphonet/resources/icrp89_circulation.csv``.

The network (edges ``source -> destination``; see also ``docs/blood_dose.md``)::

    right_heart -> pulmonary_artery -> lung -> left_heart -> aorta
    aorta -> coronary -> right_heart            (coronary sinus drains to the right atrium)
    aorta -> bronchial -> left_heart            (bronchial veins drain mostly to pulmonary veins)
    aorta -> large_arteries -> every systemic organ        (split by the organs' arterial flow)
    spleen, pancreas, stomach_oesophagus, small_intestine, large_intestine -> liver  (portal)
    liver and every other systemic organ -> large_veins
    large_veins -> superior_vena_cava | inferior_vena_cava -> right_heart

Balancing. The published flows are not exactly mass-balanced (the female column sums to 101.5% of
cardiac output at the aorta), so the network is solved for steady state instead of taking the table
at face value: each branching compartment splits its outflow in proportion to the published
(arterial) flows of its destinations, giving a row-stochastic split matrix ``P``; the balanced
throughputs ``F`` are the stationary vector of ``P`` (``F = F P``), scaled so that the aortic flow
equals the cardiac output (``F_aorta = 1``). Every compartment then conserves flow exactly
(inflow = outflow = ``F_i``) and the split fractions are those of the table. For the male column
this reproduces the published flows exactly; for the female one all systemic flows shrink by 1.5%.
Blood volume fractions are renormalised to sum to 1.

Kinetics: transfer rate ``k_ij = F_i P_ij CO / (V_i TBV)`` and mean transit time
``MTT_i = V_i TBV / (F_i CO)`` (Shin et al. 2021, eq. 1-2, in our notation).
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

from lymphonet.errors import InputError

#: Reference adults (ICRP 89): sex -> (total blood volume L, cardiac output L/min).
REFERENCE_TBV_CO: dict[str, tuple[float, float]] = {"M": (5.3, 6.5), "F": (3.9, 5.9)}

#: Organs whose venous blood goes to the liver through the portal vein.
PORTAL_ORGANS: tuple[str, ...] = (
    "spleen", "pancreas", "stomach_oesophagus", "small_intestine", "large_intestine",
)

#: Fixed (non-systemic) part of the network: (source, destination).
CENTRAL_EDGES: tuple[tuple[str, str], ...] = (
    ("right_heart", "pulmonary_artery"),
    ("pulmonary_artery", "lung"),
    ("lung", "left_heart"),
    ("left_heart", "aorta"),
    ("aorta", "coronary"),
    ("aorta", "bronchial"),
    ("aorta", "large_arteries"),
    ("coronary", "right_heart"),
    ("bronchial", "left_heart"),
    ("large_veins", "superior_vena_cava"),
    ("large_veins", "inferior_vena_cava"),
    ("superior_vena_cava", "right_heart"),
    ("inferior_vena_cava", "right_heart"),
)

TABLE_RESOURCE = "icrp89_circulation.csv"


def _parse_sex(sex: str) -> str:
    s = str(sex).strip().upper()[:1]
    if s not in REFERENCE_TBV_CO:
        raise InputError(f"sex must be 'M' or 'F', got {sex!r}", field="sex")
    return s


@lru_cache(maxsize=1)
def load_table() -> tuple[dict[str, str | float | None], ...]:
    """Read the packaged ICRP-89 compartment table.

    Returns:
        One dict per compartment (table order) with keys ``compartment``, ``label`` and the numeric
        columns ``flow_pct_{male,female}``, ``volume_pct_{male,female}``,
        ``arterial_flow_pct_{male,female}`` (``None`` where empty).
    """
    text = resources.files("lymphonet").joinpath("resources", TABLE_RESOURCE).read_text("utf-8")
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    rows = []
    for raw in csv.DictReader(io.StringIO("\n".join(lines))):
        row: dict[str, str | float | None] = {}
        for key, value in raw.items():
            if key in ("compartment", "label"):
                row[key] = value
            else:
                row[key] = float(value) if value not in ("", None) else None
        rows.append(row)
    return tuple(rows)


def _edges_and_weights(rows, sex: str) -> list[tuple[str, str, float]]:
    """Directed edges with split weights (published flows of the destinations, % CO)."""
    col = "male" if sex == "M" else "female"
    flow = {r["compartment"]: r[f"flow_pct_{col}"] for r in rows}
    arterial = {r["compartment"]: r[f"arterial_flow_pct_{col}"] for r in rows
                if r[f"arterial_flow_pct_{col}"] is not None}
    edges = [(src, dst, 1.0) for src, dst in CENTRAL_EDGES]
    # Branching weights: aorta by destination flow (large arteries = sum of organ arterial flows,
    # not the table's 100%, which is the trunk throughput); large veins by SVC / IVC flows.
    weight = dict(flow)
    weight["large_arteries"] = sum(arterial.values())
    edges = [(s, d, float(weight[d]) if s in ("aorta", "large_veins") else w) for s, d, w in edges]
    for organ, art in arterial.items():
        edges.append(("large_arteries", organ, float(art)))
        edges.append((organ, "liver" if organ in PORTAL_ORGANS else "large_veins", 1.0))
    return edges


def _stationary_flows(split: np.ndarray, anchor: int) -> np.ndarray:
    """Solve ``F = F P`` with ``F[anchor] = 1`` (balanced throughputs, fraction of CO)."""
    n = split.shape[0]
    a = split.T - np.eye(n)
    a[anchor] = 0.0
    a[anchor, anchor] = 1.0
    b = np.zeros(n)
    b[anchor] = 1.0
    return np.linalg.solve(a, b)


@dataclass(frozen=True, eq=False)
class Circulation:
    """A balanced compartment model of the blood circulation.

    Attributes:
        sex: ``"M"`` or ``"F"``.
        tbv_l: Total blood volume, L.
        co_l_min: Cardiac output, L/min.
        names: Compartment ids, length ``N`` (table order).
        labels: Human-readable compartment names, length ``N``.
        volume_fraction: Blood content ``V_i`` as a fraction of TBV, shape ``[N]``, sums to 1.
        flow_fraction: Balanced throughput ``F_i`` as a fraction of CO, shape ``[N]``.
        published_flow_fraction: Table flow (fraction of CO) before balancing, shape ``[N]``.
        split: Row-stochastic split matrix ``P_ij`` (probability that blood leaving ``i`` enters
            ``j``), shape ``[N, N]``.
    """

    sex: str
    tbv_l: float
    co_l_min: float
    names: tuple[str, ...]
    labels: tuple[str, ...]
    volume_fraction: np.ndarray
    flow_fraction: np.ndarray
    published_flow_fraction: np.ndarray
    split: np.ndarray

    @classmethod
    def reference(cls, sex: str = "M", tbv_l: float | None = None,
                  co_l_min: float | None = None) -> Circulation:
        """The ICRP-89 reference adult, optionally with a personal TBV and/or cardiac output.

        Args:
            sex: ``"M"`` or ``"F"``.
            tbv_l: Total blood volume in L (default 5.3 male, 3.9 female); see :func:`tbv_nadler_l`.
            co_l_min: Cardiac output in L/min (default 6.5 male, 5.9 female).

        Raises:
            InputError: Unknown sex or a non-positive / non-finite volume or output.
        """
        sex = _parse_sex(sex)
        ref_tbv, ref_co = REFERENCE_TBV_CO[sex]
        tbv = ref_tbv if tbv_l is None else float(tbv_l)
        co = ref_co if co_l_min is None else float(co_l_min)
        for value, name in ((tbv, "tbv_l"), (co, "co_l_min")):
            if not (math.isfinite(value) and value > 0):
                raise InputError(f"{name} must be a positive number, got {value!r}", field=name)
        rows = load_table()
        col = "male" if sex == "M" else "female"
        names = tuple(str(r["compartment"]) for r in rows)
        index = {n: i for i, n in enumerate(names)}
        volume = np.array([r[f"volume_pct_{col}"] for r in rows], dtype=float)
        published = np.array([r[f"flow_pct_{col}"] for r in rows], dtype=float) / 100.0
        weights = np.zeros((len(names), len(names)))
        for src, dst, w in _edges_and_weights(rows, sex):
            weights[index[src], index[dst]] += w
        split = weights / weights.sum(axis=1, keepdims=True)
        flows = _stationary_flows(split, index["aorta"])
        return cls(sex, tbv, co, names, tuple(str(r["label"]) for r in rows),
                   volume / volume.sum(), flows, published, split)

    def with_tumor(self, host: str = "lung", blood_fraction: float = 0.05,
                   flow_fraction: float | None = None) -> Circulation:
        """This circulation with a ``tumor`` compartment in parallel to ``host``.

        The tumour takes ``blood_fraction`` of the host's blood and ``flow_fraction`` (default:
        the same) of its flow: every edge into the host is split between host and tumour, and the
        tumour drains where the host does, so both keep the host's transit time when the two
        fractions are equal. HEDOS's default is 5% of the lung (Shin et al. 2021; its example
        ``tumor_volume_fraction = 0.05`` x relative blood density and perfusion 1).

        Raises:
            InputError: Unknown host, a host that is already split, or fractions outside (0, 1).
        """
        flow_fraction = blood_fraction if flow_fraction is None else flow_fraction
        for value, name in ((blood_fraction, "tumor_fraction"), (flow_fraction, "flow_fraction")):
            if not (math.isfinite(float(value)) and 0.0 < float(value) < 1.0):
                raise InputError(f"{name} must be in (0, 1), got {value!r}", field=name)
        if "tumor" in self.names:
            raise InputError("this circulation already has a tumour compartment", field="tumor")
        h = self.index(host)
        fv, ff = float(blood_fraction), float(flow_fraction)
        volume = np.append(self.volume_fraction, fv * self.volume_fraction[h])
        volume[h] *= 1.0 - fv
        split = np.zeros((self.n + 1, self.n + 1))
        split[:self.n, :self.n] = self.split
        split[:self.n, self.n] = ff * self.split[:, h]
        split[:self.n, h] *= 1.0 - ff
        split[self.n, :self.n] = self.split[h]
        flows = np.append(self.flow_fraction, ff * self.flow_fraction[h])
        flows[h] *= 1.0 - ff
        published = np.append(self.published_flow_fraction, ff * self.published_flow_fraction[h])
        published[h] *= 1.0 - ff
        return Circulation(self.sex, self.tbv_l, self.co_l_min, (*self.names, "tumor"),
                           (*self.labels, f"tumour (parallel to {host})"), volume, flows,
                           published, split)

    # ----------------------------------------------------------------------------- derived
    @property
    def n(self) -> int:
        """Number of compartments ``N``."""
        return len(self.names)

    def index(self, name: str) -> int:
        """Position of compartment ``name``; :class:`InputError` if unknown."""
        try:
            return self.names.index(name)
        except ValueError:
            raise InputError(f"unknown circulation compartment {name!r}; known: "
                             f"{', '.join(self.names)}", field="compartment") from None

    @property
    def edge_flow_fraction(self) -> np.ndarray:
        """Balanced flow ``F_ij = F_i P_ij`` along each edge, fraction of CO, shape ``[N, N]``."""
        return self.flow_fraction[:, None] * self.split

    @property
    def mtt_s(self) -> np.ndarray:
        """Mean transit time ``MTT_i = V_i TBV / (F_i CO)`` in seconds, shape ``[N]``."""
        return 60.0 * self.volume_fraction * self.tbv_l / (self.flow_fraction * self.co_l_min)

    @property
    def rate_per_s(self) -> np.ndarray:
        """Transfer rates ``k_ij = F_ij CO / (V_i TBV)`` in 1/s, shape ``[N, N]``."""
        return self.split / self.mtt_s[:, None]

    @property
    def circulation_time_s(self) -> float:
        """Mean whole-body circulation time ``TBV / CO``, s (about 49 s male, 40 s female)."""
        return 60.0 * self.tbv_l / self.co_l_min

    def return_time_s(self, name: str = "right_heart") -> float:
        """Mean time between successive entries of blood into compartment ``name``, seconds.

        For a semi-Markov chain the mean recurrence time of state ``i`` is
        ``sum_j pi_j MTT_j / pi_i`` with ``pi`` the jump-chain stationary law (``pi ~ F``), which
        reduces to ``TBV / (F_i CO)``.
        """
        return 60.0 * self.tbv_l / (self.flow_fraction[self.index(name)] * self.co_l_min)

    def jump_stationary(self) -> np.ndarray:
        """Stationary law of the embedded jump chain (``pi = pi P``), shape ``[N]``, sums to 1."""
        return self.flow_fraction / self.flow_fraction.sum()

    def balance_table(self) -> list[dict[str, float | str]]:
        """Published vs balanced flow (% CO), inflow and outflow per compartment (for reports)."""
        inflow = self.edge_flow_fraction.sum(axis=0)
        outflow = self.edge_flow_fraction.sum(axis=1)
        return [
            {"compartment": n, "published_pct": 100 * p, "balanced_pct": 100 * f,
             "inflow_pct": 100 * i, "outflow_pct": 100 * o, "volume_pct": 100 * v,
             "mtt_s": m}
            for n, p, f, i, o, v, m in zip(self.names, self.published_flow_fraction,
                                           self.flow_fraction, inflow, outflow,
                                           self.volume_fraction, self.mtt_s)
        ]


def tbv_nadler_l(sex: str, height_cm: float, weight_kg: float) -> float:
    """Total blood volume from height and weight (Nadler, Hidalgo and Bloch, Surgery 51:224, 1962).

    ``TBV = a H^3 + b W + c`` with H in m and W in kg; male (0.3669, 0.03219, 0.6041), female
    (0.3561, 0.03308, 0.1833). Use it with :meth:`Circulation.reference` to personalise TBV (scale
    the cardiac output by the same ratio to keep the reference circulation time).

    Raises:
        InputError: Unknown sex or implausible height / weight.
    """
    sex = _parse_sex(sex)
    if not (50.0 <= float(height_cm) <= 250.0):
        raise InputError(f"height_cm {height_cm!r} outside 50-250 cm", field="height_cm")
    if not (10.0 <= float(weight_kg) <= 350.0):
        raise InputError(f"weight_kg {weight_kg!r} outside 10-350 kg", field="weight_kg")
    a, b, c = (0.3669, 0.03219, 0.6041) if sex == "M" else (0.3561, 0.03308, 0.1833)
    h_m = float(height_cm) / 100.0
    return a * h_m ** 3 + b * float(weight_kg) + c
