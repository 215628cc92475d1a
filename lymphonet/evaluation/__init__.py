"""Evaluation: baselines, metrics with patient-bootstrap intervals, the harness and the report.

Import the submodules directly (``lymphonet.evaluation.metrics`` is numpy-only and cheap;
``harness`` pulls in torch and the training code only inside its functions).
"""
