"""Evaluation: baselines, one estimator face for every model, the harness, metrics tables, report.

Modules: ``baselines`` (tabular classifiers, scikit-learn style) and ``mechanistic`` (trajectory
baselines); ``networks`` (train / load the hybrid through ``train.py``'s loop); ``estimators``
(:class:`~lymphonet.evaluation.estimators.FoldData` and the ``fit(fold)`` / ``predict(fold)``
adapters of every model, registered by name); ``harness`` (the loop over folds and estimators);
``tables`` (pooling and patient-bootstrap scoring; metric definitions are
:mod:`lymphonet.metrics`); ``report`` (metrics.csv + HTML). Import the submodules directly; torch
and the training code are imported inside functions.
"""
