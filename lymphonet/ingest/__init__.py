"""Cohort ingestion: a clinic's DICOM RT export and lab export -> a lymphonet cohort folder.

Entry point :func:`ingest` (``lymphonet ingest`` on the command line); the steps live in
:mod:`.scan` (header-only walk), :mod:`.group` (patients and plans by DICOM references),
:mod:`.convert` (per-plan NIfTI + manifest row, incremental), :mod:`.labs` (lab export -> ALC
table), :mod:`.pseudonym` (keyed-hash ids, redaction) and :mod:`.report` (findings). See
docs/ingest.md.
"""

from lymphonet.ingest.labs import LabConfig
from lymphonet.ingest.pipeline import IngestResult, ingest

__all__ = ["IngestResult", "LabConfig", "ingest"]
