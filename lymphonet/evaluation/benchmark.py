"""The benchmark: K-fold cross-validation of every model, pooled over folds AND cohort seeds.

:func:`run_benchmark` simulates one cohort per seed (the config's ``cohort`` section with
``cohort.seed`` replaced; reused when its settings are unchanged), cross-validates every model on
it (:func:`~lymphonet.evaluation.harness.cross_validate`: each fold held out once, networks
retrained per fold), pools the held-out predictions of all folds and seeds (patients of different
seeds are different patients: ids are prefixed ``s<seed>:``) and scores them once, with patient
bootstrap intervals and paired differences against the reference model. The simulated truth is
the recirculation core by default (``cohort.truth``), not the hybrid's kinetics, so the hybrid
can lose. ``lymphonet benchmark`` runs it and writes the usual report.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from lymphonet.errors import InputError
from lymphonet.evaluation.harness import EvaluationResult, cross_validate
from lymphonet.evaluation.tables import concat_outcomes, concat_predictions, score_predictions


def _prefixed(outcomes, seed: int):
    import numpy as np

    tag = f"s{seed}:"
    return replace(outcomes, patient_ids=np.array([tag + str(p) for p in outcomes.patient_ids]),
                   plan_ids=np.array([tag + str(p) for p in outcomes.plan_ids]))


def run_benchmark(config, seeds, out_dir: str | Path, **options) -> EvaluationResult:
    """Cross-validate every model on one simulated cohort per seed and score the pooled
    predictions.

    Args:
        config: A :class:`~lymphonet.training.config.TrainingRunConfig` whose cohort is
            simulated (``cohort.path`` unset, ``cohort.synthetic`` false).
        seeds: Cohort seeds (at least two: one cohort's luck is not evidence).
        out_dir: Folder of the cohorts (``cohort_seed<seed>/``).
        **options: :class:`~lymphonet.evaluation.harness.EvaluationOptions` fields (``models``,
            ``n_boot``, ``seed``, ``reference``, ``progress``, ...).

    Returns:
        The pooled :class:`EvaluationResult` (``settings["seeds"]`` lists the seeds).
    """
    from lymphonet.data.prepare import ensure_cohort

    seeds = [int(s) for s in seeds]
    if len(set(seeds)) < 2:
        raise InputError("give at least two different cohort seeds", field="--seeds")
    if config.cohort.path or config.cohort.synthetic:
        raise InputError("the benchmark simulates its cohorts: leave cohort.path unset and "
                         "cohort.synthetic false", field="cohort")
    results = []
    for s in seeds:
        cfg = replace(config, cohort=replace(config.cohort, seed=s))
        run_dir = Path(out_dir) / f"cohort_seed{s}"
        root = ensure_cohort(cfg.cohort, run_dir, progress=options.get("progress", False))
        per_seed = {k: v for k, v in options.items() if k != "n_boot"}
        results.append(cross_validate(cfg, root, n_boot=0, **per_seed))
    models = [m for m in results[0].predictions if all(m in r.predictions for r in results)]
    outcomes = concat_outcomes([_prefixed(r.outcomes, s) for r, s in zip(results, seeds)])
    pooled = {m: concat_predictions([r.predictions[m] for r in results]) for m in models}
    reference = options.get("reference", "hybrid")
    reference = reference if reference in pooled else next(iter(pooled), reference)
    table = score_predictions(pooled, outcomes, n_boot=options.get("n_boot", 1000),
                              seed=options.get("seed", 0), reference=reference)
    notes = {k: v for r in results for k, v in r.notes.items()}
    settings = {**results[0].settings, "seeds": seeds, "reference": reference,
                "n_plans": len(outcomes.plan_ids),
                "n_patients": len(set(outcomes.patient_ids)),
                "per_seed": [r.settings for r in results]}
    return EvaluationResult(table, pooled, outcomes, notes, settings)
