"""Write phantom patients as an LIDC-IDRI-like DICOM tree plus ground truth.

Layout (as in the LIDC-IDRI download)::

    OUT/LIDC-IDRI-0001/<MM-DD-YYYY-NA-CTCHEST-xxxxx>/<3000xxx.000000-NA-xxxxx>/000001.dcm ...
    OUT/ground_truth.csv        one row per written CT slice file
    OUT/phantom_manifest.json   seed, subjects, acquisitions, series, pitfalls

The same seed gives the same bytes (UIDs, dates, pixels, file names).

``messy=True`` reproduces LIDC's pitfalls, spread over the patients
(pitfall k goes to patient k mod N, so all appear for any N >= 1), and lists
each in the manifest under ``pitfalls``:

- ``duplicate_slices``: two slices written twice (byte-identical copies, other file names);
- ``missing_slice``: one interior slice not written;
- ``reversed_file_order``: file names and InstanceNumbers run inferior -> superior;
- ``intercept_zero_padding``: RescaleIntercept 0, PixelPaddingValue -2000, outside-FOV pixels -2000;
- ``cr_series``: a CR radiograph study in the patient folder;
- ``xml_annotation``: an LIDC-style XML reading file beside the CT slices;
- ``irregular_spacing``: the lower part of one series has 1.6x the slice spacing.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..dicom.write import SeriesInfo, _date_time, base_dataset, make_uid, save, write_ct_series
from ..utils.atomic import atomic_write_text
from .anatomy import fov_mask
from .factors import Acquisition, SubjectFactors, sample_acquisition, sample_subject
from .truth import slice_record
from .volume import ScanGeometry, render_volume, scan_geometry

log = logging.getLogger(__name__)

PITFALLS = (
    "duplicate_slices",
    "missing_slice",
    "reversed_file_order",
    "intercept_zero_padding",
    "cr_series",
    "xml_annotation",
    "irregular_spacing",
)
PADDING_STORED = -2000
CR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.1"


@dataclass(frozen=True)
class PatientPlan:
    index: int
    patient_id: str
    subject: SubjectFactors
    acq: Acquisition
    noise_seed: int
    pitfalls: tuple[str, ...]
    n_slices: int | None


def _digits(*parts: object, n: int = 5) -> str:
    h = int(hashlib.sha256(repr(parts).encode()).hexdigest()[:10], 16)
    return f"{h % 10**n:0{n}d}"


def plan_patients(patients: int, seed: int, messy: bool = False, matrix: int = 512, n_slices: int | None = None) -> list[PatientPlan]:
    if patients < 1:
        raise ValueError("need at least one patient")
    ss = np.random.SeedSequence(seed)
    plans = []
    for i, child in enumerate(ss.spawn(patients)):
        rng = np.random.default_rng(child)
        subject = sample_subject(rng)
        acq = sample_acquisition(rng, subject, matrix=matrix)
        pit = tuple(p for k, p in enumerate(PITFALLS) if messy and k % patients == i)
        plans.append(PatientPlan(i, f"LIDC-IDRI-{i + 1:04d}", subject, acq, int(rng.integers(0, 2**31 - 1)), pit, n_slices))
    return plans


def _irregular(geom: ScanGeometry, subject: SubjectFactors) -> ScanGeometry:
    """Lower half at 1.6x the spacing (still within t in [0, 1])."""
    n = geom.n
    half = n // 2
    d = [i * geom.spacing_mm for i in range(half)]
    step = 1.6 * geom.spacing_mm
    while len(d) < n and d[-1] + step <= subject.length_mm + 1e-6:
        d.append(d[-1] + step)
    depth = np.array(d)
    return ScanGeometry(t=depth / subject.length_mm, z_mm=geom.z_mm[0] - depth, spacing_mm=geom.spacing_mm)


def _write_patient(out: str, plan: PatientPlan, seed: int) -> dict:
    out_p = Path(out)
    s, acq = plan.subject, plan.acq
    geom = scan_geometry(s, acq, plan.n_slices)
    if "irregular_spacing" in plan.pitfalls:
        geom = _irregular(geom, s)
    rng = np.random.default_rng(plan.noise_seed)
    hu = render_volume(s, acq, geom.t, rng)
    n = acq.matrix
    pid = plan.patient_id
    study_uid = make_uid(seed, pid, "study")
    series_uid = make_uid(seed, pid, "series")
    date, _ = _date_time(((seed, pid), study_uid))  # the study date write_ct_series records
    study_dir = out_p / pid / f"{date[4:6]}-{date[6:8]}-{date[:4]}-NA-CTCHEST-{_digits(seed, pid, 'st')}"
    series_number = 3000000 + int(_digits(seed, pid, "sn", n=3))
    series_dir = study_dir / f"{series_number}.000000-NA-{_digits(seed, pid, 'se')}"
    info = SeriesInfo(
        patient_id=pid,
        patient_name=f"Phantom^{plan.index + 1:04d}",
        patient_sex="F" if s.breast_mm > 0 else "M",
        study_uid=study_uid,
        series_uid=series_uid,
        series_number=series_number,
        accession=_digits(seed, pid, "acc", n=8),
        series_description=f"Synthetic chest CT {acq.slice_thickness_mm:g} mm",
    )
    outside = ~fov_mask(n)
    intercept, pad = -1024.0, PADDING_STORED
    pitfalls: list[dict] = []
    if "intercept_zero_padding" in plan.pitfalls:
        intercept = 0.0
        pitfalls.append({"kind": "intercept_zero_padding", "patient_id": pid, "series_dir": str(series_dir.relative_to(out_p)), "padding_value": pad, "intercept": 0})
    nz = geom.n
    keep = np.ones(nz, dtype=bool)
    if "missing_slice" in plan.pitfalls and nz >= 3:
        drop = nz // 2
        keep[drop] = False
        pitfalls.append({"kind": "missing_slice", "patient_id": pid, "series_dir": str(series_dir.relative_to(out_p)), "z_mm": float(geom.z_mm[drop]), "index": int(drop)})
    order = np.arange(nz)
    names = [f"{i + 1:06d}.dcm" for i in range(nz)]
    inums = list(range(1, nz + 1))
    if "reversed_file_order" in plan.pitfalls:
        names = names[::-1]
        inums = inums[::-1]
        pitfalls.append({"kind": "reversed_file_order", "patient_id": pid, "series_dir": str(series_dir.relative_to(out_p))})
    if "irregular_spacing" in plan.pitfalls:
        pitfalls.append({"kind": "irregular_spacing", "patient_id": pid, "series_dir": str(series_dir.relative_to(out_p)), "spacings_mm": sorted({round(float(d), 3) for d in np.abs(np.diff(geom.z_mm))})})
    idx = order[keep]
    paths = write_ct_series(
        series_dir,
        hu if keep.all() else hu[idx],  # avoid copying a 100 MB volume
        acq.pixel_spacing_mm,
        geom.z_mm[idx],
        info=info,
        seed=(seed, pid),
        slice_thickness=acq.slice_thickness_mm,
        intercept=intercept,
        padding_value=pad,
        padding_mask=outside,
        file_names=[names[i] for i in idx],
        instance_numbers=[inums[i] for i in idx],
    )
    rows = []
    for i, p in zip(idx, paths):
        rec = slice_record(s, acq, float(geom.t[i]))
        rec.update(
            {
                "patient_id": pid,
                "file": str(p.relative_to(out_p)),
                "series_uid": series_uid,
                "instance_number": inums[i],
                "z_mm": float(geom.z_mm[i]),
                "slice_index": int(i),
                "rel_z": float(i / max(nz - 1, 1)),
                "duplicate_of": "",
            }
        )
        rows.append(rec)
    if "duplicate_slices" in plan.pitfalls and len(paths) >= 4:
        dups = []
        for j in (1, len(paths) // 2 + 1):
            src = paths[j]
            dst = src.with_name(f"{src.stem}_dup.dcm")
            shutil.copyfile(src, dst)
            rec = dict(rows[j])
            rec["file"] = str(dst.relative_to(out_p))
            rec["duplicate_of"] = rows[j]["file"]
            rows.append(rec)
            dups.append({"file": rec["file"], "copy_of": rec["duplicate_of"], "z_mm": rec["z_mm"]})
        pitfalls.append({"kind": "duplicate_slices", "patient_id": pid, "series_dir": str(series_dir.relative_to(out_p)), "duplicates": dups})
    if "xml_annotation" in plan.pitfalls:
        xml = series_dir / f"{_digits(seed, pid, 'xml', n=3)}.xml"
        _write_xml(xml, study_uid, rows[0]["series_uid"])
        pitfalls.append({"kind": "xml_annotation", "patient_id": pid, "file": str(xml.relative_to(out_p))})
    if "cr_series" in plan.pitfalls:
        cr_dir = out_p / pid / f"01-01-2000-NA-CHEST2V-{_digits(seed, pid, 'crst')}" / f"1.000000-NA-{_digits(seed, pid, 'crse')}"
        cr_path = _write_cr(cr_dir, hu, acq, geom, info, seed)
        pitfalls.append({"kind": "cr_series", "patient_id": pid, "file": str(cr_path.relative_to(out_p))})
    return {
        "patient_id": pid,
        "subject": s.to_dict(),
        "acquisition": acq.to_dict(),
        "series_dir": str(series_dir.relative_to(out_p)),
        "n_slices_written": len(paths),
        "spacing_mm": geom.spacing_mm,
        "pitfalls": pitfalls,
        "rows": rows,
    }


def _write_xml(path: Path, study_uid: str, series_uid: str) -> None:
    # Minimal LIDC-style reading session: shape, not content, is the point.
    text = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<LidcReadMessage uid="1.3.6.1.4.1.14519.5.2.1.6279.6001.phantom" xmlns="http://www.nih.gov">\n'
        "  <ResponseHeader>\n"
        f"    <StudyInstanceUID>{study_uid}</StudyInstanceUID>\n"
        f"    <SeriesInstanceUid>{series_uid}</SeriesInstanceUid>\n"
        "  </ResponseHeader>\n"
        "  <readingSession><annotationVersion>3.12</annotationVersion></readingSession>\n"
        "</LidcReadMessage>\n"
    )
    path.write_text(text)


def _write_cr(cr_dir: Path, hu: np.ndarray, acq: Acquisition, geom: ScanGeometry, info: SeriesInfo, seed: int) -> Path:
    """A frontal chest radiograph-like projection (sum of attenuation along AP)."""
    cr_dir.mkdir(parents=True, exist_ok=True)
    mu = np.clip((hu + 1000.0) / 1000.0, 0.0, 3.0)  # relative to water
    proj = mu.sum(axis=1) * acq.pixel_spacing_mm / 10.0  # (Z, X), cm of water
    img = 1.0 - np.exp(-0.18 * proj)
    stored = np.rint(img / max(img.max(), 1e-6) * 4095).astype(np.uint16)
    ds = base_dataset(CR_IMAGE_STORAGE, "CR")
    study_uid = make_uid(seed, info.patient_id, "cr-study")
    series_uid = make_uid(seed, info.patient_id, "cr-series")
    date, time = _date_time((seed, study_uid))
    ds.PatientName = info.patient_name
    ds.PatientID = info.patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = info.patient_sex
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = "Synthetic phantom, no real patient"
    ds.StudyInstanceUID = study_uid
    ds.StudyDate = date
    ds.StudyTime = time
    ds.ReferringPhysicianName = ""
    ds.StudyID = "2"
    ds.AccessionNumber = ""
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = 1
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = "AP"
    ds.PatientOrientation = ["L", "F"]
    ds.Manufacturer = "napari-latentdirs"
    ds.InstanceNumber = 1
    ds.ImageType = ["DERIVED", "PRIMARY"]
    ds.ContentDate = date
    ds.ContentTime = time
    ds.KVP = "120"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = int(stored.shape[0]), int(stored.shape[1])
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.ImagerPixelSpacing = [f"{geom.spacing_mm:.6g}", f"{acq.pixel_spacing_mm:.6g}"]
    ds.SOPInstanceUID = make_uid(series_uid, 0, "sop")
    ds.PixelData = stored.tobytes()
    path = cr_dir / "000001.dcm"
    save(ds, path)
    return path


GT_FIRST = ["patient_id", "file", "series_uid", "instance_number", "z_mm", "slice_index", "rel_z", "t", "duplicate_of"]


def write_phantom_tree(
    out: str | os.PathLike,
    patients: int,
    seed: int,
    messy: bool = False,
    matrix: int = 512,
    n_slices: int | None = None,
    workers: int | None = None,
) -> dict:
    """Write ``patients`` synthetic CT scans under ``out``; returns the manifest.

    ``matrix`` (default 512) and ``n_slices`` (default: length / thickness) keep
    test trees tiny. ``workers`` > 1 renders patients in parallel processes
    (output is identical either way).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plans = plan_patients(patients, seed, messy, matrix, n_slices)
    if workers is None:
        workers = min(len(plans), os.cpu_count() or 1, 4)
    if workers > 1 and len(plans) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(_write_patient, [str(out)] * len(plans), plans, [seed] * len(plans)))
    else:
        results = [_write_patient(str(out), p, seed) for p in plans]
    rows = [r for res in results for r in res.pop("rows")]
    cols = GT_FIRST + [k for k in rows[0] if k not in GT_FIRST]
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    atomic_write_text(out / "ground_truth.csv", buf.getvalue())
    manifest = {
        "generator": "napari_latentdirs.phantom",
        "seed": seed,
        "patients": patients,
        "messy": messy,
        "matrix": matrix,
        "series": results,
        "pitfalls": [p for res in results for p in res["pitfalls"]],
    }
    atomic_write_text(out / "phantom_manifest.json", json.dumps(manifest, indent=2, sort_keys=True))
    log.info("wrote %d patients, %d slice files under %s", patients, len(rows), out)
    return manifest
