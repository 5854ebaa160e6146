"""Specific exceptions for every way a DICOM file or series can be unusable.

Each class says *what* is wrong; the message says *where* (file name) and the
offending values, so a log line alone is enough to fix the input. All derive
from :class:`DicomReadError` (a ``ValueError``), so a caller that only wants
"skip this series" catches one class.
"""

from __future__ import annotations

from pathlib import Path


class DicomReadError(ValueError):
    """Base class: this input cannot be read into a trustworthy HU volume."""

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        super().__init__(f"{self.path.name}: {message}" if self.path is not None else message)


# --- file level -------------------------------------------------------------------------------
class DicomFileNotFoundError(DicomReadError):
    """The path does not exist or is not a regular file."""


class EmptyFileError(DicomReadError):
    """Zero-length file (an interrupted download, typically)."""


class NotDicomError(DicomReadError):
    """Not a DICOM file (no 'DICM' preamble and no parseable data set)."""


class TruncatedFileError(DicomReadError):
    """The file ends before the data set does."""


class MissingPixelDataError(DicomReadError):
    """No (7FE0,0010) Pixel Data element."""


class PixelDataLengthError(DicomReadError):
    """Pixel Data length disagrees with Rows x Columns x BitsAllocated."""


class MissingAttributeError(DicomReadError):
    """A Type 1 attribute needed for HU or geometry is absent or empty."""


class InvalidAttributeError(DicomReadError):
    """An attribute is present but its value is unusable (zero spacing, non-orthonormal IOP...)."""


class ImplausibleGeometryError(InvalidAttributeError):
    """Spacing or position outside any physical CT (e.g. PixelSpacing 1e20 mm): refused before it
    can reach a viewer, where such numbers overflow the camera and poison every later draw."""


class NotCTImageError(DicomReadError):
    """Modality is not CT or the SOP class is not a CT image (CR, SEG, SR, localizer...)."""


class UnsupportedImageError(DicomReadError):
    """A CT image in a form this reader does not handle (RGB, multi-frame, non-axial...)."""


class UnsupportedOrientationError(UnsupportedImageError):
    """Slices are not axial (slice normal more than 45 degrees from the patient z axis)."""


class CompressedNoDecoderError(DicomReadError):
    """Compressed transfer syntax for which no pixel-data decoder is installed."""


class PixelDecodeError(DicomReadError):
    """A decoder is available but the (compressed) pixel data is corrupt."""


# --- series level -----------------------------------------------------------------------------
class EmptySeriesError(DicomReadError):
    """No files were given, or none is left after removing duplicates."""


class MixedSeriesError(DicomReadError):
    """Files from more than one series (or patient) were given as one series."""


class InconsistentSeriesError(DicomReadError):
    """Slices of one series disagree on Rows/Columns, orientation, spacing or pixel format."""


__all__ = [
    "CompressedNoDecoderError",
    "DicomFileNotFoundError",
    "DicomReadError",
    "EmptyFileError",
    "EmptySeriesError",
    "ImplausibleGeometryError",
    "InconsistentSeriesError",
    "InvalidAttributeError",
    "MissingAttributeError",
    "MissingPixelDataError",
    "MixedSeriesError",
    "NotCTImageError",
    "NotDicomError",
    "PixelDataLengthError",
    "PixelDecodeError",
    "TruncatedFileError",
    "UnsupportedImageError",
    "UnsupportedOrientationError",
]
