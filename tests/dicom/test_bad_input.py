"""Bad-input corpus: every case gets a specific exception with a clear message, never a volume."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import UID, RLELossless, SegmentationStorage

from napari_latentdirs.dicom import errors as E
from napari_latentdirs.dicom.series import load_ct, read_series

sys.path.insert(0, str(Path(__file__).parent))
from dcmfactory import ct_dataset, random_raw, save  # noqa: E402

RAW = random_raw((2, 8, 8), seed=0)


def good(k: int = 0, **kw):
    return ct_dataset(RAW[k], ipp=(0.0, 0.0, 2.0 * k), instance=k + 1, **kw)


def one(tmp: Path, ds, name="a.dcm") -> list[Path]:
    return [save(ds, tmp / name)]


def pair(tmp: Path, ds0, ds1) -> list[Path]:
    return [save(ds0, tmp / "a.dcm"), save(ds1, tmp / "b.dcm")]


def raw_bytes(tmp: Path, data: bytes, name="a.dcm") -> list[Path]:
    p = tmp / name
    p.write_bytes(data)
    return [p]


def good_bytes(tmp: Path) -> bytes:
    p = save(good(), tmp / "src.bin")
    data = p.read_bytes()
    p.unlink()
    return data


def without(keyword: str):
    def make(tmp):
        ds = good()
        delattr(ds, keyword)
        return one(tmp, ds)

    return make


def with_attr(**attrs):
    def make(tmp):
        ds = good()
        for k, v in attrs.items():
            setattr(ds, k, v)
        return one(tmp, ds)

    return make


def compressed_unknown(tmp):
    ds = good()
    ds.compress(RLELossless)
    ds.file_meta.TransferSyntaxUID = UID("1.2.840.10008.1.2.4.100")  # MPEG2: no decoder exists
    return one(tmp, ds)


def private_syntax(tmp):
    ds = good()
    ds.file_meta.TransferSyntaxUID = UID("1.2.826.0.1.3680043.10.1234.99")
    p = tmp / "a.dcm"
    ds.save_as(p, implicit_vr=False, little_endian=True, enforce_file_format=True)
    return [p]


def corrupt_rle(tmp):
    ds = good()
    ds.compress(RLELossless)
    frame = bytearray(ds.PixelData)
    # Keep the encapsulation valid, garble the RLE header (segment count) of the frame.
    offset = 16  # after the basic offset table item (8) and the frame item tag/length (8)
    frame[offset : offset + 4] = (99).to_bytes(4, "little")
    ds.PixelData = bytes(frame)
    return one(tmp, ds)


def truncated_in_pixels(tmp):
    return raw_bytes(tmp, good_bytes(tmp)[:-40])


def truncated_in_header(tmp):
    return raw_bytes(tmp, good_bytes(tmp)[:300])


def _rows_value_offset(data: bytes, tmp: Path) -> int:
    p = tmp / "probe.bin"
    p.write_bytes(data)
    offset = pydicom.dcmread(p).get_item("Rows").value_tell
    p.unlink()
    return offset


def truncated_in_element_value(tmp):
    data = good_bytes(tmp)
    return raw_bytes(tmp, data[: _rows_value_offset(data, tmp) + 1])


def truncated_in_element_header(tmp):
    data = good_bytes(tmp)
    return raw_bytes(tmp, data[: _rows_value_offset(data, tmp) - 5])


def pixel_short(tmp):
    ds = good()
    ds.PixelData = ds.PixelData[:-32]
    return one(tmp, ds)


def pixel_long(tmp):
    ds = good()
    ds.PixelData = ds.PixelData + b"\x00" * 64
    return one(tmp, ds)


def missing_pixels(tmp):
    ds = good()
    del ds.PixelData
    return one(tmp, ds)


def rgb(tmp):
    ds = good()
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "RGB"
    ds.PlanarConfiguration = 0
    ds.PixelData = np.zeros((8, 8, 3), np.uint16).tobytes()
    return one(tmp, ds)


def multiframe(tmp):
    ds = good()
    ds.NumberOfFrames = 2
    ds.PixelData = ds.PixelData * 2
    return one(tmp, ds)


CASES: list[tuple[str, Callable[[Path], list[Path]], type[Exception], str]] = [
    ("zero-length", lambda t: raw_bytes(t, b""), E.EmptyFileError, r"a\.dcm: zero-length file"),
    ("xml annotation", lambda t: raw_bytes(t, b"<?xml version='1.0'?><LidcReadMessage/>" * 10, "a.xml"), E.NotDicomError, r"a\.xml: not a DICOM file \(no 'DICM' marker"),
    ("png bytes", lambda t: raw_bytes(t, b"\x89PNG\r\n\x1a\n" + bytes(300)), E.NotDicomError, r"not a DICOM file"),
    ("DICM marker, garbage after", lambda t: raw_bytes(t, bytes(128) + b"DICM" + b"\xff" * 64), E.NotDicomError, r"'DICM' marker but no File Meta Information"),
    ("missing file", lambda t: [t / "nope.dcm"], E.DicomFileNotFoundError, r"nope\.dcm: no such file"),
    ("truncated in meta header", truncated_in_header, E.TruncatedFileError, r"file ends inside the file meta header"),
    ("truncated in element value", truncated_in_element_value, E.TruncatedFileError, r"file ends inside element \(0028,0010\) \(1 of 2 value bytes present\)"),
    ("truncated in element header", truncated_in_element_header, E.TruncatedFileError, r"3 stray bytes after the last element \(cut-off element header\)"),
    ("truncated in pixel data", truncated_in_pixels, E.TruncatedFileError, r"file ends inside element \(7FE0,0010\) \(88 of 128 value bytes present\)"),
    ("missing pixel data", missing_pixels, E.MissingPixelDataError, r"no Pixel Data \(7FE0,0010\) element"),
    ("pixel data too short", pixel_short, E.PixelDataLengthError, r"Pixel Data has 96 bytes but Rows x Columns x BitsAllocated = 8x8x16 needs 128"),
    ("pixel data too long", pixel_long, E.PixelDataLengthError, r"Pixel Data has 192 bytes .* needs 128"),
    ("compressed, no decoder", compressed_unknown, E.CompressedNoDecoderError, r"compressed \(MPEG2 .*\) and no installed decoder"),
    ("private transfer syntax", private_syntax, E.CompressedNoDecoderError, r"unknown transfer syntax 1\.2\.826\.0\.1\.3680043\.10\.1234\.99"),
    ("corrupt RLE stream", corrupt_rle, E.PixelDecodeError, r"cannot decode RLE Lossless pixel data"),
    ("mixed series", lambda t: pair(t, good(0), good(1, series_uid="1.2.3.4.2")), E.MixedSeriesError, r"2 different SeriesInstanceUIDs given as one series"),
    ("mixed patients", lambda t: pair(t, good(0), good(1, patient_id="P2")), E.MixedSeriesError, r"one series UID but 2 PatientIDs"),
    ("inconsistent rows/columns", lambda t: pair(t, good(0), ct_dataset(random_raw((8, 6)), ipp=(0, 0, 2), instance=2)), E.InconsistentSeriesError, r"Rows/Columns differ within the series: 8x8 in a\.dcm vs 8x6 in b\.dcm"),
    ("inconsistent orientation", lambda t: pair(t, good(0), good(1, iop=(1, 0, 0, 0, -1, 0))), E.InconsistentSeriesError, r"ImageOrientationPatient differs within the series"),
    ("inconsistent pixel spacing", lambda t: pair(t, good(0), good(1, spacing=(0.7, 0.9))), E.InconsistentSeriesError, r"PixelSpacing differs within the series"),
    ("missing IPP", without("ImagePositionPatient"), E.MissingAttributeError, r"missing ImagePositionPatient"),
    ("missing IOP", without("ImageOrientationPatient"), E.MissingAttributeError, r"missing ImageOrientationPatient"),
    ("missing PixelSpacing", without("PixelSpacing"), E.MissingAttributeError, r"missing PixelSpacing"),
    ("missing SeriesInstanceUID", without("SeriesInstanceUID"), E.MissingAttributeError, r"missing SeriesInstanceUID"),
    ("missing Rows", without("Rows"), E.MissingAttributeError, r"missing Rows"),
    ("IPP with two values", with_attr(ImagePositionPatient=[0.0, 1.0]), E.MissingAttributeError, r"missing ImagePositionPatient .*got"),
    ("non-orthonormal IOP", with_attr(ImageOrientationPatient=[1, 0, 0, 0.5, 1, 0]), E.InvalidAttributeError, r"ImageOrientationPatient is not orthonormal"),
    ("zero PixelSpacing", with_attr(PixelSpacing=[0.0, 0.7]), E.InvalidAttributeError, r"PixelSpacing must be positive, got \[0\.0, 0\.7\]"),
    ("zero RescaleSlope", with_attr(RescaleSlope=0), E.InvalidAttributeError, r"unusable rescale: RescaleSlope=0\.0"),
    ("sagittal slices", with_attr(ImageOrientationPatient=[0, 1, 0, 0, 0, -1]), E.UnsupportedOrientationError, r"slices are not axial: .*looks sagittal"),
    ("CR radiograph", lambda t: one(t, good(modality="CR", sop_class="1.2.840.10008.5.1.4.1.1.1")), E.NotCTImageError, r"not a CT image: CR radiograph"),
    ("SEG object", lambda t: one(t, good(modality="SEG", sop_class=SegmentationStorage)), E.NotCTImageError, r"not a CT image: SEG segmentation"),
    ("CT localizer", with_attr(ImageType=["ORIGINAL", "PRIMARY", "LOCALIZER"]), E.NotCTImageError, r"CT localizer \(scout\)"),
    ("secondary capture", lambda t: one(t, good(sop_class="1.2.840.10008.5.1.4.1.1.7")), E.NotCTImageError, r"Secondary Capture"),
    ("enhanced CT", lambda t: one(t, good(sop_class="1.2.840.10008.5.1.4.1.1.2.1")), E.UnsupportedImageError, r"Enhanced CT \(multi-frame\) storage is not supported"),
    ("RGB", rgb, E.UnsupportedImageError, r"SamplesPerPixel=3 \(colour\)"),
    ("multi-frame", multiframe, E.UnsupportedImageError, r"multi-frame image \(2 frames\)"),
    ("empty list", lambda t: [], E.EmptySeriesError, r"no files given for the series"),
]


def test_corpus_is_large_enough():
    assert len(CASES) >= 25
    assert len({name for name, *_ in CASES}) == len(CASES)


@pytest.mark.parametrize("name, make, exc, pattern", CASES, ids=[c[0] for c in CASES])
def test_bad_input_raises_specific_error(tmp_path, name, make, exc, pattern):
    paths = make(tmp_path)
    with pytest.raises(exc, match=pattern) as info:
        read_series(paths)
    assert isinstance(info.value, E.DicomReadError)  # one base class to catch for "skip"
    assert type(info.value) is exc  # the specific class, not a parent


def test_load_ct_folder_with_only_bad_series_raises_first_reason(tmp_path):
    pixel_short(tmp_path)
    with pytest.raises(E.PixelDataLengthError):
        load_ct(tmp_path)


def test_load_ct_skips_bad_series_and_keeps_good(tmp_path, caplog):
    pair(tmp_path / "good", good(0), good(1))
    bad = good(0, series_uid="1.2.3.4.77")
    bad.PixelData = bad.PixelData[:-2]
    save(bad, tmp_path / "bad" / "x.dcm")
    vols = load_ct(tmp_path)
    assert [v.series_uid for v in vols] == ["1.2.3.4.1"]
    assert "Pixel Data has 126 bytes" in caplog.text


def test_pydicom_would_have_accepted_the_truncated_file(tmp_path):
    """Why the truncation check exists: pydicom returns a short Pixel Data silently."""
    (p,) = truncated_in_pixels(tmp_path)
    ds = pydicom.dcmread(p)
    assert len(ds.PixelData) == 88
