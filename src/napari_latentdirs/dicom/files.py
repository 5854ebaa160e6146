"""File-level DICOM access: sniffing, strict reading, classification.

pydicom is lenient on purpose: a truncated file usually reads "fine" with a
short last element. Here every such case becomes a specific exception from
:mod:`.errors`, so nothing half-read reaches a volume.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from .errors import (
    DicomFileNotFoundError,
    EmptyFileError,
    NotDicomError,
    TruncatedFileError,
)
from .fastparse import FastParser, Unsupported

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2.1"
LEGACY_ENHANCED_CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2.2"
SECONDARY_CAPTURE_PREFIX = "1.2.840.10008.5.1.4.1.1.7"
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"

#: Human-readable reasons for skipping non-CT series (logged by discovery).
MODALITY_REASONS = {
    "CR": "CR radiograph",
    "DX": "DX radiograph",
    "SEG": "SEG segmentation",
    "SR": "SR structured report",
    "PR": "PR presentation state",
    "RTSTRUCT": "RTSTRUCT contours",
    "MR": "MR image",
    "PT": "PET image",
    "NM": "NM image",
    "US": "US image",
    "KO": "KO key-object selection",
    "OT": "OT (other) image",
}

#: Tags discovery needs; reading only these keeps header scans fast.
HEADER_TAGS = [
    "SOPClassUID",
    "Modality",
    "SeriesInstanceUID",
    "StudyInstanceUID",
    "PatientID",
    "SeriesDescription",
    "ImageType",
    "InstanceNumber",
    "NumberOfFrames",
]


def sniff(path: str | os.PathLike) -> str:
    """Cheap content check: 'dicom', 'raw-dicom' (no preamble), 'empty' or 'other'."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return "other"
    if not head:
        return "empty"
    if len(head) == 132 and head[128:132] == b"DICM":
        return "dicom"
    # Old files without the 128-byte preamble start directly with a group 0x0008 element.
    if len(head) >= 8 and head[:2] == b"\x08\x00" and head[2:4] in (b"\x00\x00", b"\x05\x00", b"\x08\x00", b"\x16\x00", b"\x12\x00"):
        return "raw-dicom"
    return "other"


def read_dataset(path: str | os.PathLike, *, stop_before_pixels: bool = False, specific_tags=None) -> Dataset:
    """Read one file strictly: raises a specific :class:`DicomReadError` subclass on bad input."""
    path = Path(path)
    if not path.is_file():
        raise DicomFileNotFoundError("no such file", path)
    size = path.stat().st_size
    kind = sniff(path)
    if kind == "empty":
        raise EmptyFileError("zero-length file", path)
    if kind == "other":
        raise NotDicomError(f"not a DICOM file (no 'DICM' marker at byte 128; {size} bytes)", path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ds = pydicom.dcmread(
                path,
                force=kind == "raw-dicom",
                stop_before_pixels=stop_before_pixels,
                specific_tags=specific_tags,
            )
        except InvalidDicomError as e:
            raise NotDicomError(f"not a valid DICOM file ({e})", path) from e
        except (EOFError, OSError) as e:
            raise TruncatedFileError(f"file ends inside the data set ({e})", path) from e
        except (ValueError, KeyError, TypeError, NotImplementedError) as e:
            raise NotDicomError(f"unparseable DICOM data set ({type(e).__name__}: {e})", path) from e
    meta = ds.file_meta
    if kind == "dicom" and (meta is None or "TransferSyntaxUID" not in meta):
        raise NotDicomError("'DICM' marker but no File Meta Information (no TransferSyntaxUID)", path)
    for w in caught:
        msg = str(w.message)
        if "End of file reached" in msg:
            raise TruncatedFileError(f"file ends inside the data set ({msg})", path)
    if not stop_before_pixels:
        _check_complete(ds, size, path)
    return ds


def _check_complete(ds: Dataset, size: int, path: Path) -> None:
    """Raise TruncatedFileError if the last element runs past (or stops short of) the end of file.

    pydicom silently returns a short value for an element cut off by EOF and
    silently drops an element whose header is cut off; both are caught here.
    """
    meta = ds.file_meta
    if meta is not None and "FileMetaInformationGroupLength" in meta:
        # 132 preamble+magic, 12 bytes for the group-length element itself.
        meta_end = 132 + 12 + int(meta.FileMetaInformationGroupLength)
        if meta_end > size:
            raise TruncatedFileError(f"file ends inside the file meta header ({size} of {meta_end} bytes)", path)
    tags = list(ds.keys())
    if not tags:
        raise TruncatedFileError(f"file ends before the first data set element ({size} bytes)", path)
    last = ds.get_item(tags[-1])
    value_tell = getattr(last, "value_tell", None)
    length = getattr(last, "length", None)
    if value_tell is None or length is None or length == 0xFFFFFFFF:
        return
    end = int(value_tell) + int(length)
    if end > size:
        raise TruncatedFileError(
            f"file ends inside element {last.tag} ({size - int(value_tell)} of {length} value bytes present)",
            path,
        )
    # Fewer bytes than the smallest element header left over: an element cut off in its header.
    if 0 < size - end < 8:
        raise TruncatedFileError(f"{size - end} stray bytes after the last element (cut-off element header)", path)


def sop_class(ds: Dataset) -> str:
    uid = ds.get("SOPClassUID")
    if not uid and ds.file_meta is not None:
        uid = ds.file_meta.get("MediaStorageSOPClassUID")
    return str(uid or "")


def _norm(value):
    """pydicom gives '' for some empty values and None for others: use None for both."""
    return None if value is None or (isinstance(value, str) and value == "") else value


def dataset_values(ds: Dataset, keywords: list[str]) -> dict:
    """The keywords' values from a pydicom data set, in the same form as the fast parser's."""
    v = {kw: _norm(ds.get(kw)) for kw in keywords}
    v["SOPClassUID"] = sop_class(ds) or None
    meta = ds.file_meta
    v["TransferSyntaxUID"] = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    return v


_HEADER_PARSER = FastParser(HEADER_TAGS)


def read_header(path: str | os.PathLike) -> dict:
    """Discovery header values (HEADER_TAGS + TransferSyntaxUID); fast path, pydicom fallback."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(16384)
            try:
                vals, meta = _HEADER_PARSER.parse(head)
            except Unsupported:
                # The header may simply be longer than the first read.
                vals, meta = _HEADER_PARSER.parse(head + fh.read())
        vals["SOPClassUID"] = vals.get("SOPClassUID") or meta.get("MediaStorageSOPClassUID") or None
        vals["TransferSyntaxUID"] = meta.get("TransferSyntaxUID", "")
        return {kw: vals.get(kw) for kw in [*HEADER_TAGS, "TransferSyntaxUID"]}
    except (Unsupported, OSError, UnicodeDecodeError):
        ds = read_dataset(path, stop_before_pixels=True, specific_tags=HEADER_TAGS)
        return dataset_values(ds, HEADER_TAGS)


def non_ct_reason(info) -> str | None:
    """Why this header (a dict from :func:`read_header`/:func:`dataset_values`) is not a
    single-frame CT image, or None if it is one."""
    sop = str(info.get("SOPClassUID") or "")
    modality = str(info.get("Modality") or "").upper()
    if sop == MEDIA_STORAGE_DIRECTORY:
        return "DICOMDIR index, not an image"
    if modality and modality != "CT":
        return MODALITY_REASONS.get(modality, f"{modality} modality, not CT")
    if sop in (ENHANCED_CT_STORAGE, LEGACY_ENHANCED_CT_STORAGE):
        return "Enhanced CT (multi-frame) storage is not supported"
    if sop.startswith(SECONDARY_CAPTURE_PREFIX):
        return "Secondary Capture, not a CT image"
    if sop and sop != CT_IMAGE_STORAGE:
        name = getattr(pydicom.uid.UID(sop), "name", sop)
        return f"SOP class {name} is not CT Image Storage"
    if not modality:
        return "no Modality"
    image_type = info.get("ImageType") or []
    if isinstance(image_type, str):
        image_type = [image_type]
    if "LOCALIZER" in [str(t).upper() for t in image_type]:
        return "CT localizer (scout), not an axial image"
    return None
