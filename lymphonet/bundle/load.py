"""Loading a model bundle: checksums, versions and kinetic constants verified before anything is
built; every problem is an :class:`~lymphonet.errors.InputError` naming the file and field.

The bundle layout is described in :mod:`lymphonet.bundle.export`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lymphonet.errors import InputError

BUNDLE_FORMAT = "lymphonet-bundle/1"
CHECKSUM_FILE = "checksums.sha256"
REQUIRED_FILES = ("weights.pt", "config.json", "clinical_encoder.json", "metadata.json")
INTERVAL_LEVEL = 0.9

INTENDED_USE = (
    "Research use only: rank patients or compare treatment plans by their predicted risk of "
    "radiation-induced lymphopenia (ALC trajectory, nadir, CTCAE grade >= 3 and grade 4 "
    "probabilities). Not a medical device; not for individual treatment decisions.")
LIMITS = [
    ("Trained on the cohort summarised under training_cohort; when that cohort is SIMULATED "
     "(lymphonet twin: thorax / abdomen / brain sites) the numbers are not clinical evidence."),
    ("Other anatomy (e.g. head and neck, breast) still scores: organ channels that a plan does "
     "not contour are zero, EDIC is missing without lungs and heart, and the prediction is an "
     "extrapolation outside the training distribution."),
    ("Inputs must follow the data contract: total-course dose in Gy (RBE-weighted for particles), "
     "baseline ALC in 10^9/L, beam-on time per fraction in s; no unit is guessed."),
    ("Intervals come from the learned residual-noise model (90% central, log-normal); they do "
     "not include uncertainty in the network weights."),
    ("Blood-dose features are Monte-Carlo estimates with a fixed seed (reproducible); their "
     "statistical precision depends on the particle count recorded under inputs."),
]


# ---------------------------------------------------------------------------------------------
# versions and checksums


def current_versions() -> dict[str, str]:
    """lymphonet, torch and python versions of this process."""
    from lymphonet.training.checkpoint import versions

    return versions()


def _major_minor(version: str) -> tuple[str, ...]:
    return tuple(version.split("+")[0].split(".")[:2])


def check_versions(recorded: dict[str, str], *, file: str | Path | None = None) -> None:
    """Refuse a bundle written by an incompatible lymphonet (major.minor) or torch (major).

    Raises:
        InputError: Field ``versions.lymphonet`` or ``versions.torch``, both versions named.
    """
    now = current_versions()
    if _major_minor(str(recorded.get("lymphonet", "?"))) != _major_minor(now["lymphonet"]):
        raise InputError(f"bundle written by lymphonet {recorded.get('lymphonet')}, this is "
                         f"{now['lymphonet']} (major.minor must match); re-export it with this "
                         "version", file=file, field="versions.lymphonet")
    if str(recorded.get("torch", "?")).split(".")[0] != now["torch"].split(".")[0]:
        raise InputError(f"bundle written with torch {recorded.get('torch')}, this is torch "
                         f"{now['torch']} (major version must match)", file=file,
                         field="versions.torch")


def kinetics_constants(core: str = "two_population") -> dict[str, Any]:
    """The kinetics core's fixed constants that predictions depend on but weights do not hold
    (:func:`lymphonet.kinetics.cores.constants`: the core, each parameter's (prior, lower, upper)
    and the resident-pool shares)."""
    from lymphonet.kinetics.cores import constants

    return constants(core)


def check_kinetics(recorded: dict[str, Any] | None, *, file: str | Path | None = None) -> None:
    """Refuse a bundle whose kinetics core, priors or bounds differ from this library's.

    The network outputs theta *relative to* the priors, so the same weights give other
    predictions if the priors change (e.g. after a recalibration). Bundles without a ``core``
    were exported with the two-population core.

    Raises:
        InputError: Field ``kinetics``, naming the parameters that differ.
    """
    if recorded is None:
        return
    now = kinetics_constants(recorded.get("core", "two_population"))
    # resident sites added later weigh 0 in the two-population core: a record without them agrees
    default = {"params": None, "organ_share": 0.0}
    diff = [f"{group}.{k}" for group in ("params", "organ_share")
            for k in sorted(set(recorded.get(group, {})) | set(now[group]))
            if recorded.get(group, {}).get(k, default[group]) != now[group].get(k)]
    if diff:
        raise InputError(f"kinetic priors / bounds differ from the ones the bundle was exported "
                         f"with ({', '.join(diff[:6])}); re-export the model with this version",
                         file=file, field="kinetics")


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file (read in 1 MiB blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_checksums(folder: Path) -> Path:
    """Write ``checksums.sha256`` over every other file in ``folder`` (sorted, sha256sum format)."""
    names = sorted(p.name for p in folder.iterdir() if p.is_file() and p.name != CHECKSUM_FILE)
    lines = [f"{sha256_file(folder / n)}  {n}" for n in names]
    path = folder / CHECKSUM_FILE
    path.write_text("\n".join(lines) + "\n")
    return path


def verify_checksums(folder: Path) -> dict[str, str]:
    """Check every file listed in ``checksums.sha256`` and that the required files are listed.

    Returns:
        File name -> hex digest.

    Raises:
        InputError: Missing checksum file, unlisted required file, missing or altered file.
    """
    sums_path = folder / CHECKSUM_FILE
    if not sums_path.is_file():
        raise InputError("no checksums.sha256: not a lymphonet bundle (or an incomplete one)",
                         file=sums_path, field="checksums")
    listed: dict[str, str] = {}
    for i, line in enumerate(sums_path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64 or "/" in name or name.startswith("."):
            raise InputError(f"malformed line {i}", file=sums_path, field="checksums")
        listed[name] = digest
    for name in REQUIRED_FILES:
        if name not in listed:
            raise InputError("required file not covered by the checksums", file=folder / name,
                             field="checksums")
    for name, digest in listed.items():
        path = folder / name
        if not path.is_file():
            raise InputError("file listed in checksums.sha256 is missing", file=path,
                             field="checksums")
        if sha256_file(path) != digest:
            raise InputError("checksum mismatch: the file was altered after export (re-export "
                             "the bundle)", file=path, field="checksums")
    return listed


# ---------------------------------------------------------------------------------------------
# bundle object


@dataclass
class Bundle:
    """A loaded, verified bundle.

    Attributes:
        path: Bundle folder.
        model: Eager HybridModel in eval mode (CPU).
        data_config: Preprocessing settings the model was trained with.
        encoder: Fitted :class:`~lymphonet.data.clinical.ClinicalEncoder`.
        metadata: Content of metadata.json.
        model_version: ``<lymphonet version>+<first 12 hex of the weights' SHA-256>``.
    """

    path: Path
    model: nn.Module
    data_config: Any
    encoder: Any
    metadata: dict[str, Any]
    model_version: str

    @property
    def onnx_path(self) -> Path | None:
        p = self.path / "network.onnx"
        return p if p.is_file() else None

    @property
    def torchscript_path(self) -> Path | None:
        p = self.path / "network.ts"
        return p if p.is_file() else None


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(f"cannot read JSON ({err})", file=path) from None


def load_bundle(folder: str | Path, *, verify: bool = True) -> Bundle:
    """Verify (checksums, format, versions) and load a bundle.

    Args:
        folder: Bundle folder written by :func:`export_bundle`.
        verify: Check checksums (keep True; False only for a folder just verified in this
            process, e.g. in scoring workers).

    Raises:
        InputError: Not a bundle, altered files, incompatible versions, inconsistent content.
    """
    from lymphonet.config import from_dict
    from lymphonet.data.clinical import ClinicalEncoder
    from lymphonet.data.config import DataConfig
    from lymphonet.models.hybrid import HybridModel, ModelConfig

    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("model bundle folder not found", file=folder, field="--model")
    digests = verify_checksums(folder) if verify else {}
    meta = read_json(folder / "metadata.json")
    if meta.get("format") != BUNDLE_FORMAT:
        raise InputError(f"not a {BUNDLE_FORMAT} bundle (format {meta.get('format')!r})",
                         file=folder / "metadata.json", field="format")
    check_versions(meta.get("versions", {}), file=folder / "metadata.json")
    check_kinetics(meta.get("kinetics"), file=folder / "metadata.json")
    config = read_json(folder / "config.json")
    data_cfg = from_dict(DataConfig, config.get("data"), where="config.data")
    model_cfg = from_dict(ModelConfig, config.get("model"), where="config.model")
    core = (meta.get("kinetics") or {}).get("core", "two_population")
    if model_cfg.use_kinetics and core != model_cfg.kinetics_core:
        raise InputError(f"bundle metadata records the {core} kinetics core, its model config the "
                         f"{model_cfg.kinetics_core} core", file=folder / "metadata.json",
                         field="kinetics.core")
    encoder = ClinicalEncoder.from_dict(read_json(folder / "clinical_encoder.json"))
    state = _read_weights(folder / "weights.pt")
    try:
        model = HybridModel(cfg=model_cfg, **meta["inputs"]["model_inputs"])
        model.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError) as err:
        raise InputError(f"weights do not fit the configured model ({err})",
                         file="weights.pt", field="weights") from None
    weights_sha = digests.get("weights.pt") or sha256_file(folder / "weights.pt")
    version = f"{meta['versions']['lymphonet']}+{weights_sha[:12]}"
    if meta.get("model_version") not in (None, version):
        raise InputError(f"model_version {meta.get('model_version')!r} does not match the "
                         f"weights ({version})", file=folder / "metadata.json",
                         field="model_version")
    return Bundle(folder, model.eval(), data_cfg, encoder, meta, version)


def _read_weights(path: Path) -> dict:
    """A state dict of plain tensors; anything else (a pickle with code, a damaged file) is an
    InputError and nothing in it runs (``torch.load(weights_only=True)``)."""
    import pickle

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as err:
        kind = type(err).__name__
        raise InputError(f"weights.pt is not a plain tensor file ({kind}): it was refused "
                         "unread, since loading it fully could run code; re-export the bundle "
                         "from a trusted checkpoint", file="weights.pt", field="weights") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError("weights.pt does not hold a state dict of tensors", file="weights.pt",
                         field="weights")
    return state
