"""Procedural thorax anatomy: HU of one axial slice at level t on any pixel grid.

Coordinates. Image/patient space follows DICOM LPS with ImageOrientationPatient
(1,0,0,0,1,0): x grows to the patient's left (image right), y grows posterior
(image down), the isocentre is the image centre. The body is rotated about its
own centre by ``rotation_deg`` (positive = clockwise on screen) and rests on a
curved table that does *not* rotate. Inside the body, anatomy is authored in a
"canonical" frame (u, v) in mm for a reference core of 290 x 195 mm and scaled
to the subject by (sx, sy); the fat layer and skin are added in true mm so
the wall thickness does not scale with the body.

Level t in [0, 1] runs from the lung apex (0) to the upper abdomen (1): apex
with trachea, shoulders and scapulae; aortic arch (~0.22); carina (~0.30);
pulmonary trunk (~0.35); heart (~0.45-0.75); right diaphragm dome (~0.64)
above the left (~0.70); then liver, stomach with an air-fluid level (level in
*image* space, gravity does not rotate), and spleen.

Every boundary is anti-aliased over one pixel (coverage from an approximate
signed distance), which doubles as partial-volume blur and keeps image
measurements smooth in the factors.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .factors import REF_HALF_DEPTH, REF_HALF_WIDTH, Acquisition, SubjectFactors

# HU of tissues (published ranges).
HU_AIR = -1000.0
HU_LUNG = -860.0
HU_FAT = -100.0
HU_MUSCLE = 50.0
HU_BLOOD = 40.0
HU_BLOOD_CONTRAST = 260.0
HU_LIVER = 60.0
HU_LIVER_CONTRAST = 110.0
HU_SPLEEN = 48.0
HU_SPLEEN_CONTRAST = 120.0
HU_CANCELLOUS = 250.0
HU_CORTICAL = 850.0
HU_CARTILAGE = 120.0
HU_CSF = 15.0
HU_DISC = 85.0
HU_TABLE_SHELL = 180.0
HU_TABLE_FOAM = -880.0
HU_PAD = -820.0

TABLE_PAD_MM = 9.0
TABLE_SHELL_MM = 3.0
TABLE_FOAM_MM = 34.0
TABLE_RADIUS_MM = 700.0
TABLE_HALF_WIDTH_MM = 240.0

TEX_TEXELS = 256
TEX_MM = 1.75  # texel size in canonical mm
TEX_KNOT_MM = 16.0
TEX_KNOTS = 30


def smoothstep(a: float, b: float, x):
    s = np.clip((np.asarray(x, dtype=np.float64) - a) / (b - a), 0.0, 1.0)
    return s * s * (3 - 2 * s)


def _ss(a: float, b: float, x: float) -> float:
    return float(smoothstep(a, b, x))


def bump(t: float, lo: float, hi: float) -> float:
    """Ellipsoidal z-profile in [0, 1]: 0 outside (lo, hi), 1 at the middle."""
    if t <= lo or t >= hi:
        return 0.0
    c = (lo + hi) / 2
    h = (hi - lo) / 2
    return math.sqrt(max(0.0, 1.0 - ((t - c) / h) ** 2))


# --------------------------------------------------------------------------------------
# Level profiles of the outline (relative to the reference core)
def core_width_factor(t: float) -> float:
    return 1.0 + 0.10 * (1.0 - _ss(0.04, 0.26, t)) - 0.04 * _ss(0.70, 1.0, t)


def core_depth_factor(t: float) -> float:
    return 0.86 + 0.14 * _ss(0.0, 0.45, t) + 0.03 * _ss(0.60, 1.0, t)


def breast_profile(t: float) -> float:
    return max(0.0, 1.0 - ((t - 0.52) / 0.24) ** 2) ** 0.6


@dataclass(frozen=True)
class CoreShape:
    a: float  # canonical half-width
    b_ant: float
    b_post: float
    p_ant: float = 2.3
    p_post: float = 2.9


def core_shape(t: float) -> CoreShape:
    w = core_width_factor(t)
    d = core_depth_factor(t)
    # The back lies flat on the table at every level; only the front varies.
    return CoreShape(REF_HALF_WIDTH * w, REF_HALF_DEPTH * d * 0.97, REF_HALF_DEPTH * 1.03)


def cavity_shape(t: float) -> CoreShape:
    """Thoracic cavity (inner surface of the ribs) in canonical mm."""
    cw = 0.52 + 0.38 * _ss(0.0, 0.36, t)
    ca = 0.52 + 0.30 * _ss(0.0, 0.40, t)
    cp = 0.66 + 0.18 * _ss(0.0, 0.40, t)
    return CoreShape(REF_HALF_WIDTH * cw, REF_HALF_DEPTH * ca, REF_HALF_DEPTH * cp, 2.2, 2.6)


def _norm(u, v, s: CoreShape):
    """Superellipse norm (homogeneous of degree 1): boundary where it is 1."""
    au = np.abs(u) / np.float32(s.a)
    post = v > 0
    bv = np.abs(v) / np.where(post, np.float32(s.b_post), np.float32(s.b_ant))
    p = np.where(post, np.float32(s.p_post), np.float32(s.p_ant))
    return np.exp(np.log(au**p + bv**p + np.float32(1e-12)) / p)


def outline_radius_mm(subject: SubjectFactors, t: float, phi: np.ndarray) -> np.ndarray:
    """Skin radius (mm, body frame) along rays at angles ``phi`` (radians, 0 = +x
    i.e. patient left, pi/2 = posterior). Used for the ground-truth measures."""
    c, s = np.cos(phi), np.sin(phi)
    u, v = c / subject.sx, s / subject.sy  # canonical point at 1 mm along the ray
    n = _norm(u, v, core_shape(t))
    rb = 1.0 / np.maximum(n, 1e-9)
    return rb + subject.fat_mm + _breast_bulge(subject, t, u, v)


def _breast_bulge(subject: SubjectFactors, t: float, u, v, phi=None):
    if subject.breast_mm <= 0:
        return np.zeros(np.shape(u), dtype=np.float32)
    amp = subject.breast_mm * breast_profile(t)
    if amp <= 0:
        return np.zeros(np.shape(u), dtype=np.float32)
    # Angle from the anterior direction in the canonical frame, so breasts sit
    # at the same anatomical place on wide and narrow bodies.
    if phi is None:
        phi = np.arctan2(np.abs(u), -v)
    ang = np.degrees(phi)
    return (amp * np.exp(-0.5 * ((ang - 40.0) / 13.0) ** 2)).astype(np.float32)


# --------------------------------------------------------------------------------------
# Textures: a shared bank of band-passed noise, sampled per subject at an offset.
@functools.lru_cache(maxsize=2)
def texture_bank(seed: int = 20240) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = TEX_TEXELS
    raw = rng.standard_normal((TEX_KNOTS, n, n)).astype(np.float32)
    # Ridges of band-passed noise look like branching vessels.
    g = ndimage.gaussian_filter(raw, sigma=(0.0, 2.2, 2.2), mode="wrap")
    g /= g.std()
    vessels = np.exp(-((g / 0.22) ** 2)).astype(np.float32)
    fine = ndimage.gaussian_filter(rng.standard_normal((4, n, n)).astype(np.float32), (0, 1.2, 1.2), mode="wrap")
    fine /= fine.std()
    return {"vessels": vessels, "fine": fine.astype(np.float32)}


def _sample_tex(field2d: np.ndarray, u, v, off: tuple[float, float]):
    """Bilinear wrap-around lookup of a texel field (power-of-two side) at
    canonical (u, v) mm."""
    n = field2d.shape[0]
    mask = n - 1
    fu = u * np.float32(1.0 / TEX_MM) + np.float32(off[0])
    fv = v * np.float32(1.0 / TEX_MM) + np.float32(off[1])
    fu0 = np.floor(fu)
    fv0 = np.floor(fv)
    du = fu - fu0
    dv = fv - fv0
    iu = fu0.astype(np.int64) & mask
    iv = fv0.astype(np.int64) & mask
    iu1 = (iu + 1) & mask
    row0 = iv * n
    row1 = ((iv + 1) & mask) * n
    flat = field2d.ravel()
    f00 = flat.take(row0 + iu)
    f01 = flat.take(row0 + iu1)
    f10 = flat.take(row1 + iu)
    f11 = flat.take(row1 + iu1)
    return (f00 + (f01 - f00) * du) * (1 - dv) + (f10 + (f11 - f10) * du) * dv


# --------------------------------------------------------------------------------------
class Patch:
    """Coverage on a rectangular window of the image (small structures only
    evaluate their own bounding box, which keeps rendering fast)."""

    __slots__ = ("win", "cov")
    __array_ufunc__ = None  # make ``ndarray * Patch`` call Patch.__rmul__


    def __init__(self, win: tuple[slice, slice] | None, cov):
        self.win = win
        self.cov = cov

    def __mul__(self, other):
        if self.cov is None:
            return self
        if isinstance(other, Patch):
            return self._mul_patch(other)
        if isinstance(other, np.ndarray) and other.ndim == 2:
            return Patch(self.win, self.cov * (other[self.win] if self.win is not None else other))
        return Patch(self.win, self.cov * other)

    __rmul__ = __mul__

    def _mul_patch(self, other: Patch) -> Patch:
        if other.cov is None:
            return other
        a0, a1 = self.win
        c0, c1 = other.win
        r0, r1 = max(a0.start, c0.start), min(a0.stop, c0.stop)
        q0, q1 = max(a1.start, c1.start), min(a1.stop, c1.stop)
        if r1 <= r0 or q1 <= q0:
            return Patch(None, None)
        mine = self.cov[r0 - a0.start : r1 - a0.start, q0 - a1.start : q1 - a1.start]
        theirs = other.cov[r0 - c0.start : r1 - c0.start, q0 - c1.start : q1 - c1.start]
        return Patch((slice(r0, r1), slice(q0, q1)), mine * theirs)


class _Canvas:
    """Painter's algorithm with fractional coverage."""

    def __init__(self, shape, fill: float):
        self.img = np.full(shape, fill, dtype=np.float32)

    def paint(self, cov, hu) -> None:
        if cov is None:
            return
        if isinstance(cov, Patch):
            if cov.cov is None:
                return
            win = cov.win
            sub = self.img[win]
            if isinstance(hu, np.ndarray) and hu.ndim == 2 and hu.shape == self.img.shape:
                hu = hu[win]
            sub += cov.cov * (np.asarray(hu, dtype=np.float32) - sub)
            return
        self.img += cov * (np.asarray(hu, dtype=np.float32) - self.img)


def _cov(d, w: float):
    """Coverage from a signed distance d (negative inside) and edge width w."""
    return np.clip(0.5 - d / w, 0.0, 1.0).astype(np.float32)


class SliceRenderer:
    """Renders HU for one subject/acquisition on an n x n grid over the FOV."""

    def __init__(self, subject: SubjectFactors, acq: Acquisition, n: int):
        self.s = subject
        self.acq = acq
        self.n = n
        self.px = acq.fov_mm / n
        c = (np.arange(n, dtype=np.float32) - (n - 1) / 2) * np.float32(self.px)
        self.x = c[None, :].repeat(n, 0)  # image/patient x (mm)
        self.y = c[:, None].repeat(n, 1)
        th = math.radians(subject.rotation_deg)
        self.cos, self.sin = math.cos(th), math.sin(th)
        # Body centre: the un-rotated reference body rests on the pad of the table.
        self.cx = 0.0
        self.cy = subject.y_offset_mm
        dx = self.x - self.cx
        dy = self.y - self.cy
        self.X = (self.cos * dx + self.sin * dy).astype(np.float32)  # body frame, mm
        self.Y = (-self.sin * dx + self.cos * dy).astype(np.float32)
        self.u = self.X / np.float32(subject.sx)  # canonical
        self.v = self.Y / np.float32(subject.sy)
        self.r = np.sqrt(self.X**2 + self.Y**2)
        self.aa = self.px  # anti-alias width in mm
        self.aac = self.px / math.sqrt(subject.sx * subject.sy)  # in canonical mm
        rng = np.random.default_rng(subject.texture_seed)
        self.tex_off = (float(rng.uniform(0, TEX_TEXELS)), float(rng.uniform(0, TEX_TEXELS)))
        self.tex_zoff = int(rng.integers(0, TEX_KNOTS))
        self._table_img: np.ndarray | None = None

    @functools.cached_property
    def phi(self) -> np.ndarray:
        """Angle from the anterior midline in the canonical frame, 0..pi (radians)."""
        return np.arctan2(np.abs(self.u), -self.v)

    @property
    def table_top_mm(self) -> float:
        """Image y of the table's top surface (under the pad) at x = 0."""
        s = self.s
        back = REF_HALF_DEPTH * core_depth_factor(0.5) * 1.03 * s.sy + s.fat_mm
        return self.cy + back + TABLE_PAD_MM

    # ---- primitives in canonical coordinates ---------------------------------------
    def window(self, u0: float, u1: float, v0: float, v1: float) -> tuple[slice, slice] | None:
        """Pixel window covering the canonical box [u0,u1] x [v0,v1]."""
        s = self.s
        X = np.array([u0, u1, u0, u1]) * s.sx
        Y = np.array([v0, v0, v1, v1]) * s.sy
        x = self.cx + self.cos * X - self.sin * Y
        y = self.cy + self.sin * X + self.cos * Y
        h = (self.n - 1) / 2
        c0 = max(int(math.floor(x.min() / self.px + h)) - 2, 0)
        c1 = min(int(math.ceil(x.max() / self.px + h)) + 3, self.n)
        r0 = max(int(math.floor(y.min() / self.px + h)) - 2, 0)
        r1 = min(int(math.ceil(y.max() / self.px + h)) + 3, self.n)
        if c1 <= c0 or r1 <= r0:
            return None
        return (slice(r0, r1), slice(c0, c1))

    def ellipse(self, cu, cv, ru, rv, angle_deg: float = 0.0, grow: float = 0.0) -> Patch:
        ru += grow
        rv += grow
        if ru <= 0 or rv <= 0:
            return Patch(None, None)
        m = max(ru, rv) + 2 * self.aac
        win = self.window(cu - m, cu + m, cv - m, cv + m)
        if win is None:
            return Patch(None, None)
        du = self.u[win] - np.float32(cu)
        dv = self.v[win] - np.float32(cv)
        if angle_deg:
            a = math.radians(angle_deg)
            ca, sa = np.float32(math.cos(a)), np.float32(math.sin(a))
            du, dv = ca * du + sa * dv, -sa * du + ca * dv
        q = np.sqrt((du / np.float32(ru)) ** 2 + (dv / np.float32(rv)) ** 2)
        r = np.sqrt(du**2 + dv**2)
        rb = np.where(q > 1e-6, r / np.maximum(q, np.float32(1e-6)), np.float32(min(ru, rv)))
        return Patch(win, _cov((q - 1.0) * rb, self.aac))

    def capsule(self, p0, p1, radius: float) -> Patch:
        if radius <= 0:
            return Patch(None, None)
        (x0, y0), (x1, y1) = p0, p1
        m = radius + 2 * self.aac
        win = self.window(min(x0, x1) - m, max(x0, x1) + m, min(y0, y1) - m, max(y0, y1) + m)
        if win is None:
            return Patch(None, None)
        u = self.u[win]
        v = self.v[win]
        ex, ey = x1 - x0, y1 - y0
        L2 = ex * ex + ey * ey
        h = np.clip(((u - x0) * ex + (v - y0) * ey) / L2, 0.0, 1.0)
        d = np.sqrt((u - x0 - h * ex) ** 2 + (v - y0 - h * ey) ** 2) - np.float32(radius)
        return Patch(win, _cov(d, self.aac))

    # ---- the slice ----------------------------------------------------------------------
    def render(self, t: float, depth_mm: float | None = None) -> np.ndarray:
        s = self.s
        if depth_mm is None:
            depth_mm = t * s.length_mm
        cv = _Canvas(self.x.shape, HU_AIR)
        # The table does not change along z: render it once per subject.
        if self._table_img is None:
            self._table(cv)
            self._table_img = cv.img.copy()
        else:
            cv.img[...] = self._table_img

        core = core_shape(t)
        n_core = _norm(self.u, self.v, core)
        rb = self.r / np.maximum(n_core, 1e-6)  # core boundary radius along each ray (mm)
        bulge = _breast_bulge(s, t, self.u, self.v, self.phi if s.breast_mm > 0 else None)
        r_skin = rb + s.fat_mm + bulge
        d_skin = self.r - r_skin
        # Skin (dermis) then subcutaneous fat, then the muscle core.
        cv.paint(_cov(d_skin, self.aa), 30.0)
        cv.paint(_cov(d_skin + 2.0, self.aa), HU_FAT)
        if s.breast_mm > 0 and bulge.max() > 1.0:
            core0 = core_shape(t)
            bwin = self.window(-core0.a - 80, core0.a + 80, -core0.b_ant - 90, 0.0)
            if bwin is not None:
                u, v = self.u[bwin], self.v[bwin]
                gl = _sample_tex(texture_bank()["fine"][1], u, v, self.tex_off)
                bw = bulge[bwin]
                # Fibroglandular tissue: strands toward the nipple inside the bulge.
                depth_in = (r_skin[bwin] - self.r[bwin]) / np.maximum(bw + s.fat_mm, 1.0)
                w = np.clip(bw / 12.0, 0, 1) * np.clip(1.6 * (1 - np.abs(depth_in - 0.45) / 0.4), 0, 1)
                # Strands: the brighter half of a band-passed texture.
                gland = np.clip(0.5 + 0.9 * gl, 0, 1) * w
                cv.paint(Patch(bwin, gland.astype(np.float32)), 35.0)
        d_core = self.r - rb
        cv.paint(_cov(d_core, self.aa), HU_MUSCLE)

        self._shoulders(cv, t)
        cav = cavity_shape(t)
        n_cav = _norm(self.u, self.v, cav)
        r_cav = self.r / np.maximum(n_cav, 1e-6)
        d_cav = self.r - r_cav  # mm, negative inside the thoracic cavity
        self._ribs(cv, t, depth_mm, d_cav, n_cav)
        self._scapulae(cv, t, d_cav)
        self._sternum(cv, t, core)

        # Cavity contents: lungs above the diaphragm domes, abdomen below.
        cav_cov = _cov(d_cav, self.aa)
        abd = self._abdomen_fraction(t)
        cwin = self.window(-cav.a - 4, cav.a + 4, -cav.b_ant - 4, cav.b_post + 4) or (slice(0, 0), slice(0, 0))
        lung_cov = Patch(cwin, (cav_cov * (1.0 - abd))[cwin])
        cv.paint(lung_cov, self._lung_hu(depth_mm, cwin))
        if abd.max() > 0:
            self._abdomen(cv, t, Patch(cwin, (cav_cov * abd)[cwin]))
        self._mediastinum(cv, t)
        # Paraspinal muscles (erector spinae) either side of the spinous process.
        for side in (-1, 1):
            cv.paint(self.ellipse(side * 26, 76, 20, 16), HU_MUSCLE)
        cv.paint(self.ellipse(0, 72, 14, 18), HU_MUSCLE)
        self._spine(cv, t, depth_mm)
        return cv.img

    # ---- components --------------------------------------------------------------------
    def _table(self, cv: _Canvas) -> None:
        top = self.table_top_mm
        # Concave-up tabletop: edges rise; it stays level (no body rotation).
        sag = self.x**2 / (2 * TABLE_RADIUS_MM)
        dy = self.y - (top - sag)  # >0 below the top surface
        inside_x = _cov(np.abs(self.x) - TABLE_HALF_WIDTH_MM, self.aa)
        pad = _cov(np.abs(dy + TABLE_PAD_MM / 2) - TABLE_PAD_MM / 2, self.aa) * _cov(np.abs(self.x) - 200.0, self.aa)
        cv.paint(pad, HU_PAD)
        shell_top = _cov(np.abs(dy - TABLE_SHELL_MM / 2) - TABLE_SHELL_MM / 2, self.aa)
        foam = _cov(np.abs(dy - TABLE_SHELL_MM - TABLE_FOAM_MM / 2) - TABLE_FOAM_MM / 2, self.aa)
        off = TABLE_SHELL_MM + TABLE_FOAM_MM
        shell_bot = _cov(np.abs(dy - off - TABLE_SHELL_MM / 2) - TABLE_SHELL_MM / 2, self.aa)
        cv.paint(foam * inside_x, HU_TABLE_FOAM)
        cv.paint(shell_top * inside_x, HU_TABLE_SHELL)
        cv.paint(shell_bot * inside_x, HU_TABLE_SHELL)

    def _shoulders(self, cv: _Canvas, t: float) -> None:
        k = 1.0 - _ss(0.06, 0.20, t)
        if k <= 0:
            return
        a = core_shape(t).a
        for side in (-1, 1):
            # Axillary fat and humeral heads at the top of the scan.
            cv.paint(self.ellipse(side * (a - 55), 8, 20 * k + 1, 30 * k + 1), HU_FAT)
            head = self.ellipse(side * (a - 28), 6, 22 * k + 0.5, 22 * k + 0.5)
            cv.paint(head, HU_CORTICAL)
            cv.paint(self.ellipse(side * (a - 28), 6, 22 * k - 2.5, 22 * k - 2.5) if k > 0.2 else None, HU_CANCELLOUS)
            # Clavicles: anterior bars from the manubrium out to the shoulder.
            if t < 0.07:
                kc = 1.0 - _ss(0.03, 0.07, t)
                p0, p1 = (side * 22, -74), (side * (a - 60), -58)
                cv.paint(self.capsule(p0, p1, 5.5 * kc + 0.1), HU_CORTICAL)
                cv.paint(self.capsule(p0, p1, 3.0 * kc), HU_CANCELLOUS)

    def _ribs(self, cv: _Canvas, t: float, depth_mm: float, d_cav, n_cav) -> None:
        s = self.s
        pitch = 23.0 * s.size
        phi = self.phi
        ph = depth_mm / pitch + 3.4 * (phi / math.pi) - 0.3
        f = np.mod(ph, 1.0)
        duty = 0.36
        # Angular distance into the rib (in phase units), converted to mm along the arc.
        inside = np.where(f < duty, np.minimum(f, duty - f), -np.minimum(f - duty, 1.0 - f))
        mm_per_phase = math.pi * np.maximum(self.r, 10.0) / 3.4
        d_ang = -inside * mm_per_phase
        thick = 9.0 * s.size
        d_rad = np.abs(d_cav - 1.5 - thick / 2) - thick / 2
        d = np.maximum(d_rad, d_ang)
        # No ribs above the first rib or anteriorly below the costal margin.
        keep = (ph > 0.3).astype(np.float32) * (1.0 - (phi < 0.9) * _ss(0.74, 0.80, t))
        keep *= (phi > 0.32).astype(np.float32)  # sternum handles the midline
        cov = _cov(d, self.aa) * keep
        if cov.max() <= 0:
            return
        cortex = np.clip(1.0 + d / 1.6, 0.0, 1.0)
        hu = HU_CANCELLOUS + (HU_CORTICAL - HU_CANCELLOUS) * cortex
        hu = np.where(phi < 0.75, HU_CARTILAGE + 60.0 * cortex, hu)
        cv.paint(cov, hu)

    def _scapulae(self, cv: _Canvas, t: float, d_cav) -> None:
        k = 1.0 - _ss(0.38, 0.46, t)
        if k <= 0:
            return
        phi = np.degrees(self.phi)
        lo, hi = 112.0, 152.0 - 10 * t
        ang = _cov(np.maximum(lo - phi, phi - hi) * 1.5, self.aa)
        off = (18.0 + 10.0 * (1 - k)) * self.s.size
        rad = _cov(np.abs(d_cav - off) - 2.8 * k, self.aa)
        cv.paint(ang * rad, HU_CORTICAL - 150)

    def _sternum(self, cv: _Canvas, t: float, core: CoreShape) -> None:
        if not 0.10 < t < 0.74:
            return
        k = bump(t, 0.08, 0.76) ** 0.3
        half_w = 24.0 if t < 0.25 else 15.0
        cvv = -core.b_ant + 13.0
        cv.paint(self.ellipse(0.0, cvv, half_w * k, 6.5 * k), HU_CORTICAL)
        cv.paint(self.ellipse(0.0, cvv, half_w * k - 2.0, 6.5 * k - 2.0), HU_CANCELLOUS - 30)

    def _lung_hu(self, depth_mm: float, win):
        bank = texture_bank()
        kz = depth_mm / TEX_KNOT_MM + self.tex_zoff
        k0 = int(math.floor(kz))
        w = np.float32(kz - k0)
        ves = bank["vessels"]
        # Blend the two z-knots at texture resolution, then one lookup.
        field = (1 - w) * ves[k0 % TEX_KNOTS] + w * ves[(k0 + 1) % TEX_KNOTS]
        u, v = self.u[win], self.v[win]
        vessel = _sample_tex(field, u, v, self.tex_off)
        # Vessels are larger and denser toward the hila.
        dh = np.minimum(np.hypot(u - 42, v + 5), np.hypot(u + 42, v + 5))
        hil = 0.20 + 0.80 * np.exp(-dh / np.float32(45.0))
        grav = np.clip(v / np.float32(90.0), -1, 1)  # dependent lung is a little denser
        return HU_LUNG + 25.0 * grav + vessel * hil * 780.0

    def _abdomen_fraction(self, t: float):
        """Fraction below the diaphragm at (u, v): right dome higher than left."""
        if t < 0.60:
            return np.zeros(self.u.shape, dtype=np.float32)
        r2r = ((self.u + 45) / 95.0) ** 2 + ((self.v + 0) / 90.0) ** 2
        r2l = ((self.u - 50) / 90.0) ** 2 + ((self.v + 0) / 90.0) ** 2
        td = np.minimum(0.64 + 0.30 * r2r, 0.70 + 0.30 * r2l)
        return np.clip((t - td) / 0.012 + 0.5, 0.0, 1.0).astype(np.float32)

    def _abdomen(self, cv: _Canvas, t: float, region) -> None:
        s = self.s
        fine = texture_bank()["fine"]
        win = region.win
        u, v = self.u[win], self.v[win]
        tex = _sample_tex(fine[2], u, v, self.tex_off)
        cv.paint(region, HU_FAT + 40.0 * tex)  # mesenteric fat / bowel mix
        liver_hu = HU_LIVER_CONTRAST if s.contrast else HU_LIVER
        # Liver: right side and across the midline anteriorly (left lobe).
        d_liver = u - (35.0 - 0.55 * (v + 40))
        liver = Patch(win, region.cov * _cov(d_liver, self.aac))
        cv.paint(liver, liver_hu + 6.0 * tex)
        # Hepatic/portal vessels and IVC.
        cv.paint(region * self.ellipse(-22, 20, 11, 10), HU_BLOOD_CONTRAST if s.contrast else HU_BLOOD)
        # Spleen, posterolateral left.
        k = bump(t, 0.76, 1.25)
        if k > 0:
            cv.paint(region * self.ellipse(78, 38, 24 * k, 42 * k, angle_deg=-30), HU_SPLEEN_CONTRAST if s.contrast else HU_SPLEEN)
        # Stomach, left anterior, with an air-fluid level that stays horizontal
        # in the image (gravity), whatever the body rotation.
        k = bump(t, 0.72, 1.30)
        if k > 0:
            cu, cvv, ru, rv = 50.0, -20.0, 40.0 * k, 36.0 * k
            st = region * self.ellipse(cu, cvv, ru, rv, angle_deg=20)
            wall = region * self.ellipse(cu, cvv, ru - 4, rv - 4, angle_deg=20)
            cv.paint(st, 45.0)
            # Stomach centre in image coordinates.
            X, Y = cu * s.sx, cvv * s.sy
            yc = self.cy + self.sin * X + self.cos * Y
            level = yc - 0.2 * rv * s.sy
            air = _cov(self.y - level, self.aa)
            cv.paint(wall * air, HU_AIR)
            cv.paint(wall * (1 - air), 15.0)

    def _mediastinum(self, cv: _Canvas, t: float) -> None:
        s = self.s
        blood = HU_BLOOD_CONTRAST if s.contrast else HU_BLOOD
        # Mediastinal fat envelope; wider at the heart.
        hk = bump(t, 0.43, 0.78)
        mw = 26.0 + 14.0 * _ss(0.1, 0.3, t) + 50.0 * hk
        cv.paint(self.ellipse(6.0 + 14 * hk, -22.0, mw, 52.0 + 8 * hk) * (1 - self._abdomen_fraction(t) * 0.7), HU_FAT + 10)
        # Heart: pericardial fat, myocardium, chambers.
        if hk > 0:
            k = hk**0.6
            cu, cvv, ang = 20.0, -26.0, -28.0
            cv.paint(self.ellipse(cu, cvv, 66 * k + 3, 50 * k + 3, ang), HU_FAT)
            cv.paint(self.ellipse(cu, cvv, 66 * k, 50 * k, ang), HU_MUSCLE - 5)
            if s.contrast:
                cv.paint(self.ellipse(cu + 20 * k, cvv + 8, 26 * k, 20 * k, ang), blood)  # LV
                cv.paint(self.ellipse(cu - 22 * k, cvv - 8, 28 * k, 22 * k, ang), blood - 60)  # RV
                cv.paint(self.ellipse(cu + 2, cvv + 30 * k, 26 * k, 12 * k, ang), blood)  # atria
            else:
                cv.paint(self.ellipse(cu + 20 * k, cvv + 8, 26 * k, 20 * k, ang), blood)
        # Great vessels.
        if t < 0.20:
            for (bu, bv), r in (((-16, -22), 6.5), ((0, -26), 5.5), ((13, -22), 5.0)):
                cv.paint(self.ellipse(bu, bv, r, r), blood)
        k = bump(t, 0.185, 0.265)
        if k > 0:  # aortic arch: anterior-right to posterior-left
            cv.paint(self.capsule((-8, -30), (22, 14), 12.0 * k**0.5), blood)
        k = bump(t, 0.23, 0.50)
        if k > 0:  # ascending aorta
            cv.paint(self.ellipse(-6, -28, 14 * k**0.3, 14 * k**0.3), blood)
        if t > 0.23:  # descending aorta, drifting to the front of the spine
            f = _ss(0.6, 1.0, t)
            cv.paint(self.ellipse(22 - 12 * f, 12 + 0 * f, 12.0, 12.0), blood)
        k = bump(t, 0.30, 0.43)
        if k > 0:  # pulmonary trunk and arteries
            pa = blood - 20 if s.contrast else blood
            cv.paint(self.ellipse(18, -36, 14 * k**0.3, 13 * k**0.3), pa)
            k2 = bump(t, 0.33, 0.41)
            if k2 > 0:
                cv.paint(self.capsule((18, -36), (44, -8), 8.5 * k2**0.5), pa)
                cv.paint(self.capsule((12, -30), (-40, -10), 8.0 * k2**0.5), pa)
        k = bump(t, 0.08, 0.46)
        if k > 0:  # superior vena cava
            cv.paint(self.ellipse(-30, -22, 10 * k**0.3, 10 * k**0.3), blood if s.contrast else HU_BLOOD)
        # Oesophagus, just in front of the spine, slightly left.
        if t < 0.86:
            cv.paint(self.ellipse(5, 22, 8.0, 7.0), HU_MUSCLE - 10)
            cv.paint(self.ellipse(5, 22, 2.2, 1.8), HU_AIR + 200)
        # Trachea, carina at ~0.30, main bronchi.
        if t < 0.31:
            k = 1.0 - _ss(0.28, 0.31, t)
            tv = -12.0 + 14.0 * _ss(0.0, 0.25, t)
            cv.paint(self.ellipse(0, tv, 11.0 * k + 0.1, 10.0 * k + 0.1), HU_MUSCLE)
            cv.paint(self.ellipse(0, tv, 9.0 * k, 8.0 * k), HU_AIR)
        if 0.29 < t < 0.42:
            f = (t - 0.29) / 0.13
            for side, reach in ((-1, 34.0), (1, 40.0)):
                cu = side * (4.0 + reach * f)
                cvv = 2.0 + 6.0 * f
                cv.paint(self.ellipse(cu, cvv, 8.0, 7.5), HU_MUSCLE)
                cv.paint(self.ellipse(cu, cvv, 6.3, 5.8), HU_AIR)

    def _spine(self, cv: _Canvas, t: float, depth_mm: float) -> None:
        s = self.s
        period = 26.0 * s.size
        disc = (np.mod(depth_mm / period, 1.0) < 0.20)
        vb_cv = 46.0
        cv.paint(self.ellipse(0, vb_cv, 17.0, 15.0), HU_DISC if disc else HU_CORTICAL)
        if not disc:
            cv.paint(self.ellipse(0, vb_cv, 15.0, 13.0), HU_CANCELLOUS)
        # Posterior elements: pedicles/laminae ring around the canal, spinous process.
        canal = 70.0
        cv.paint(self.ellipse(0, canal, 14.0, 12.0), HU_CORTICAL - 200)
        cv.paint(self.capsule((0, canal + 8), (0, canal + 26), 4.0), HU_CORTICAL - 200)
        if not disc:
            for side in (-1, 1):
                cv.paint(self.capsule((side * 10, canal - 2), (side * 30, canal - 6), 4.5), HU_CORTICAL - 250)
        cv.paint(self.ellipse(0, canal, 8.0, 7.5), HU_CSF)


def add_noise(img: np.ndarray, sigma_hu: float, rng: np.random.Generator, corr_px: float = 0.8) -> np.ndarray:
    """Correlated Gaussian noise with standard deviation ``sigma_hu``."""
    white = rng.standard_normal(img.shape, dtype=np.float32)
    if corr_px > 0:
        white = ndimage.gaussian_filter(white, corr_px, mode="reflect")
        # Filtering shrinks the variance by 1 / (4 pi sigma^2) in 2-D.
        white *= np.float32(math.sqrt(4 * math.pi) * corr_px)
    return img + np.float32(sigma_hu) * white


def fov_mask(n: int) -> np.ndarray:
    """True inside the circular reconstruction field of view."""
    c = (np.arange(n) - (n - 1) / 2) / (n / 2)
    return (c[None, :] ** 2 + c[:, None] ** 2) <= 1.0


def render_slice_hu(
    subject: SubjectFactors,
    acq: Acquisition,
    t: float,
    n: int,
    rng: np.random.Generator | None = None,
    noise_scale: float = 1.0,
    depth_mm: float | None = None,
) -> np.ndarray:
    """HU of one slice on an n x n grid over the FOV (noise-free if rng is None)."""
    img = SliceRenderer(subject, acq, n).render(t, depth_mm)
    if rng is not None and subject.noise_hu > 0:
        # Thicker slices average more photons: noise ~ 1/sqrt(thickness).
        sigma = subject.noise_hu * math.sqrt(1.25 / acq.slice_thickness_mm) * noise_scale
        img = add_noise(img, sigma, rng)
    return img
