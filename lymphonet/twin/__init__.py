"""Digital twins: parametric phantoms and analytic plans for demos, tests and simulated cohorts.

Everything generated here is SIMULATED and labelled as such wherever it is written.
"""
