"""Find CT series under any folder tree (LIDC ``LIDC-IDRI-0001/<study>/<series>/*.dcm``,
NBIA-style ``1-001.dcm`` names, flat folders...).

Files are recognised by content, not by name. Files are grouped by
SeriesInstanceUID (a series split over several folders is one series; two
series in one folder are two). A series is kept only if its files are CT Image
Storage with Modality CT; every other series is skipped with a logged reason.
Non-DICOM files (LIDC's per-series XML annotations, READMEs) are ignored.
"""

from __future__ import annotations

import logging
import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from .errors import DicomReadError
from .files import non_ct_reason, read_dataset, read_header, sniff

log = logging.getLogger(__name__)

#: Extensions that announce DICOM: such a file that is not DICOM is reported, not ignored.
DICOM_SUFFIXES = {".dcm", ".dicom", ".ima", ".dic"}


@dataclass
class SeriesFiles:
    """The files of one CT series, as found on disk (unsorted geometry: read_series sorts)."""

    series_uid: str
    patient_id: str
    study_uid: str
    description: str
    paths: list[Path]

    @property
    def folder(self) -> Path:
        return Path(os.path.commonpath([str(p.parent) for p in self.paths]))

    @property
    def n_files(self) -> int:
        return len(self.paths)


@dataclass
class Skipped:
    """A series or a file left out, with the reason (also logged)."""

    what: str  # series UID, or the file path for file-level problems
    reason: str
    paths: list[Path] = field(default_factory=list)


@dataclass
class Discovery:
    series: list[SeriesFiles]
    skipped: list[Skipped]
    ignored: list[Path] = field(default_factory=list)

    def __iter__(self):
        return iter(self.series)

    def __len__(self) -> int:
        return len(self.series)


def _natural_key(p: Path):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(p))]


def iter_files(root: Path):
    """All regular files under ``root`` (or ``root`` itself), in a deterministic order."""
    if root.is_file():
        yield root
        return
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith("."):
                yield Path(dirpath) / name


def _header(path: Path):
    """(kind, header or reason) for one file; never raises for bad input."""
    kind = sniff(path)
    if kind == "empty":
        return "bad", "zero-length file"
    if kind == "other":
        return "other", None
    try:
        return "dicom", read_header(path)
    except DicomReadError as e:
        return "bad", _corrupt(path, e)


def _corrupt(path: Path, e: DicomReadError) -> str:
    return f"corrupt or unreadable DICOM file {path.name} ({type(e).__name__}: {str(e).split(': ', 1)[-1]})"


def _missing_uid_reason(path: Path) -> str:
    """Why a file has no SeriesInstanceUID: damaged (the usual cause) or really without one.

    A damaged data set often parses "fine" far enough to lose its UIDs, so only a strict
    read of the whole file tells the two apart; it runs for these rare files only.
    """
    try:
        read_dataset(path)
    except DicomReadError as e:
        return _corrupt(path, e)
    return "no SeriesInstanceUID"


def discover_series(root: str | os.PathLike) -> Discovery:
    """Group the DICOM files under ``root`` into CT series; log everything skipped."""
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"no such file or folder: {root}")
    groups: dict[str, list[tuple[Path, object]]] = defaultdict(list)
    skipped: list[Skipped] = []
    ignored: list[Path] = []
    for path in iter_files(root):
        kind, hdr = _header(path)
        if kind == "other":
            if path.suffix.lower() in DICOM_SUFFIXES:
                skipped.append(Skipped(str(path), "not a DICOM file despite its extension", [path]))
            else:
                ignored.append(path)
            continue
        if kind == "bad":
            if path.suffix.lower() in DICOM_SUFFIXES or hdr != "zero-length file":
                skipped.append(Skipped(str(path), str(hdr), [path]))
            else:
                ignored.append(path)
            continue
        uid = str(hdr.get("SeriesInstanceUID", "") or "")
        if not uid:
            skipped.append(Skipped(str(path), _missing_uid_reason(path), [path]))
            continue
        groups[uid].append((path, hdr))

    series: list[SeriesFiles] = []
    for uid, members in groups.items():
        ct = []
        by_reason: dict[str, list[Path]] = defaultdict(list)
        for path, hdr in members:
            reason = non_ct_reason(hdr)
            if reason is None:
                ct.append((path, hdr))
            else:
                by_reason[reason].append(path)
        for reason, paths in by_reason.items():
            skipped.append(Skipped(uid, reason, sorted(paths, key=_natural_key)))
        if not ct:
            continue
        hdr0 = ct[0][1]
        series.append(
            SeriesFiles(
                series_uid=uid,
                patient_id=str(hdr0.get("PatientID", "") or ""),
                study_uid=str(hdr0.get("StudyInstanceUID", "") or ""),
                description=str(hdr0.get("SeriesDescription", "") or ""),
                paths=sorted((p for p, _ in ct), key=_natural_key),
            )
        )
    series.sort(key=lambda s: (s.patient_id, s.study_uid, s.series_uid))
    for s in skipped:
        n = len(s.paths)
        where = f"{n} file(s) under {os.path.commonpath([str(p.parent) for p in s.paths])}" if n else ""
        log.info("skipping %s (%s): %s", s.what, where, s.reason)
    log.debug("ignored %d non-DICOM file(s) under %s", len(ignored), root)
    return Discovery(series=series, skipped=skipped, ignored=ignored)


def contains_dicom(path: str | os.PathLike, *, max_files: int = 64, max_depth: int = 4) -> bool:
    """Fast check used by the napari reader: is there a DICOM file among the first few files?

    Reads at most ``max_files`` 132-byte headers and descends at most
    ``max_depth`` folders, so a large non-DICOM folder costs milliseconds.
    """
    path = Path(path)
    if path.is_file():
        return sniff(path) in ("dicom", "raw-dicom")
    if not path.is_dir():
        return False
    budget = max_files
    stack = [(path, 0)]
    while stack and budget > 0:
        folder, depth = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        subdirs = []
        for e in entries:
            if e.name.startswith("."):
                continue
            try:
                if e.is_file():
                    budget -= 1
                    if sniff(e.path) in ("dicom", "raw-dicom"):
                        return True
                    if budget <= 0:
                        return False
                elif e.is_dir() and depth < max_depth:
                    subdirs.append((Path(e.path), depth + 1))
            except OSError:
                continue
        stack.extend(reversed(subdirs))
    return False
