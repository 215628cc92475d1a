"""Training of the hybrid model: config tree, losses, plain-function loop, checkpoints,
distributed setup and (optional) MLflow tracking. See ``train.py`` for the steps in order."""
