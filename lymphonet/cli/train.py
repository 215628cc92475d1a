"""``lymphonet train``: runs the repository's ``train.py`` (the one training loop)."""

from __future__ import annotations


def register(subparsers) -> None:
    from lymphonet.training.script import add_arguments

    p = subparsers.add_parser(
        "train", help="train the hybrid model (default: on a generated SIMULATED cohort)",
        description="Train the hybrid CNN + kinetics model by running train.py. With no "
                    "arguments it uses configs/default.yaml, generates a simulated cohort into "
                    "runs/<name>/cohort (reused while its settings are unchanged), trains, and "
                    "prints held-out metrics for the hybrid and the mechanistic model at its "
                    "priors (theta = 0) side by side. Multi-GPU: torchrun --nproc_per_node N train.py ...")
    add_arguments(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from lymphonet.training.script import load_train_script

    return load_train_script().run(args)
