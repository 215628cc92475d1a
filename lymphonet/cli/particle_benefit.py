"""``lymphonet particle-benefit``: particle vs photon depletion on paired virtual cohorts.

Example::

    lymphonet particle-benefit --theta loso.theta.json --out runs/particle --n-per-site 60

Writes ``per_patient.csv``, ``summary.csv`` and ``particle_benefit.png`` (per-patient relative
reduction of depletion by site, nadir and area definitions, RT alone and with chemotherapy). See
:mod:`lymphonet.twin.particle_benefit`. SIMULATED: the model's answer.
"""

from __future__ import annotations

import json
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "particle-benefit", help="relative reduction of depletion, particle vs photon (simulated)",
        description="Plan the same virtual patients with photons and with particles, run the "
                    "recirculation core and report the relative reduction in depletion per site "
                    "(nadir and area definitions, per patient and of the mean).")
    p.add_argument("--theta", default=None,
                   help="population theta JSON ({'theta': {name: value}}, e.g. the .theta.json "
                        "literature-check writes); default: the priors")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--sites", default=None, help="comma-separated site names (default: all)")
    p.add_argument("--particle", choices=("proton", "carbon"), default="proton")
    p.add_argument("--n-per-site", type=int, default=60)
    p.add_argument("--n-phantoms", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args) -> int:
    import torch

    from lymphonet.kinetics.recirculation import RECIRCULATION_NAMES
    from lymphonet.twin.particle_benefit import particle_benefit, plot_benefit, theta_from_json

    theta = (torch.zeros(len(RECIRCULATION_NAMES), dtype=torch.float64) if args.theta is None
             else theta_from_json(json.loads(Path(args.theta).read_text())))
    sites = None if args.sites is None else [s.strip() for s in args.sites.split(",") if s.strip()]
    per_patient, summary = particle_benefit(theta, sites, n_per_site=args.n_per_site,
                                            n_phantoms=args.n_phantoms, seed=args.seed,
                                            particle=args.particle)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    per_patient.to_csv(out / "per_patient.csv", index=False)
    summary.to_csv(out / "summary.csv", index=False)
    plot_benefit(per_patient, out / "particle_benefit.png")
    print(summary.round(3).to_string(index=False))
    print(f"SIMULATED; written to {out}")
    return 0
