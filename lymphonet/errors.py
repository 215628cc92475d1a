"""Errors that name the patient, the file and the field.

Every problem with user input is raised as :class:`InputError` (or a subclass), whose message always
says *where* the problem is, so a user with hundreds of patients can fix the right row or file.
Batch jobs catch :class:`InputError` per row, record ``status="error"`` with ``str(err)`` and go on.
"""

from __future__ import annotations

import re
from pathlib import Path

#: A DICOM UID (root 0, 1 or 2, then at least four more numeric components).
_UID = re.compile(r"\b[0-2](?:\.\d+){4,}\b")
#: An absolute POSIX path with at least two components, or a Windows path, inside a message
#: (units like 10^9/L, "/1000", "#/uL" and URLs are not paths).
_ABS_PATH = re.compile(r"(?:\b[A-Za-z]:\\[^\s'\",;]*|(?<![\w.:/#^])/(?:[^\s'\",;/]+/)+[^\s'\",;]*)")


class InputError(ValueError):
    """Bad user input: unreadable file, wrong units, missing column, NaN, out-of-range value.

    Args:
        message: What is wrong, in words a user can act on.
        patient: Patient (or plan) id the problem belongs to, if known.
        file: Path of the offending file, if any.
        field: Column, DICOM attribute or structure name at fault, if any.
    """

    def __init__(
        self,
        message: str,
        *,
        patient: str | None = None,
        file: str | Path | None = None,
        field: str | None = None,
    ) -> None:
        self.message = message
        self.patient = None if patient is None else str(patient)
        self.file = None if file is None else str(file)
        self.field = field
        super().__init__(self._format())

    def _format(self) -> str:
        where = []
        if self.patient is not None:
            where.append(f"patient {self.patient!r}")
        if self.file is not None:
            where.append(f"file {self.file!r}")
        if self.field is not None:
            where.append(f"field {self.field!r}")
        return f"{'; '.join(where)}: {self.message}" if where else self.message

    def redacted(self, root: Path | None = None) -> InputError:
        """A copy safe to write anywhere: the file as :func:`safe_path` shows it (relative to
        ``root`` or its name, however the path is spelled), no UID or absolute path in the text."""
        return type(self)(redact(self.message, root), patient=self.patient,
                          file=None if self.file is None else safe_path(self.file, root),
                          field=self.field)

    def with_context(
        self,
        *,
        patient: str | None = None,
        file: str | Path | None = None,
        field: str | None = None,
    ) -> InputError:
        """Return a copy with missing context filled in (existing context wins)."""
        return type(self)(
            self.message,
            patient=self.patient if self.patient is not None else patient,
            file=self.file if self.file is not None else file,
            field=self.field if self.field is not None else field,
        )


class GeometryError(InputError):
    """Volumes that should share a grid (dose, masks) do not, or frames of reference differ."""


class UnitError(InputError):
    """A quantity comes in units lymphonet cannot convert without an explicit statement."""


def safe_path(path: str | Path, root: Path | None) -> str:
    """``path`` relative to ``root`` when inside it, else its file name (never absolute)."""
    if re.match(r"^[A-Za-z]:\\", str(path)):  # a Windows path, wherever this runs
        from pathlib import PureWindowsPath

        return PureWindowsPath(str(path)).name
    p = Path(path)
    if root is not None:
        try:
            return p.resolve().relative_to(Path(root).resolve()).as_posix()
        except ValueError:
            pass
    return p.name


def redact(message: str, root: Path | None = None) -> str:
    """A message without DICOM UIDs and absolute paths (see :func:`safe_path`), on one line."""
    message = _UID.sub("[UID]", message)
    message = _ABS_PATH.sub(lambda m: safe_path(m.group(0), root), message)
    return " ".join(message.split())


def without_absolute_paths(obj):
    """A copy of a nested config (dicts, lists, strings) with absolute paths cut to their name,
    for anything written where others read it (MLflow, model bundles)."""
    if isinstance(obj, dict):
        return {k: without_absolute_paths(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(without_absolute_paths(v) for v in obj)
    if isinstance(obj, str) and re.match(r"^[a-z][a-z0-9+.-]*:///", obj):  # sqlite:////x, file:
        scheme, rest = obj.split(":", 1)
        return f"{scheme}:{safe_path(rest.lstrip('/'), None)}"
    if isinstance(obj, str) and (obj.startswith("/") or re.match(r"^[A-Za-z]:\\", obj)):
        return safe_path(obj, None)
    return obj
