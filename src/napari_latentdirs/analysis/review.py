"""The radiologist's pass over a direction set: labels, ratings, notes, blind mode.

A :class:`ReviewSession` is a list of items to show, one per direction. In
*blind* mode the discovered directions are mixed with random directions
(seeded Gaussian vectors scaled to the discovered directions' mean norm), the
order is shuffled with a seed and the widget shows only "item 3 of 12"; at
the end :func:`score` reports how well the reader told discovered from
random -- the paper's Figs. 9 and 10 by eye, made into numbers.

Reviews are saved beside the direction set as ``<stem>.review-<reader>.json``
(everything, including the random directions, so a blind session reloads
exactly) and ``.csv`` (one row per item, for spreadsheets). :meth:`ReviewSession.load`
checks every field of a file, since its values reach the widget and the HTML report.

The reader labels with the automatic labeller's words (:data:`LABEL_PRESETS`);
"entangled", "no effect" and "not interpretable" are verdicts of *no* single
meaning and never count as interpretable. With two or more readers,
:func:`reader_study` gives accuracy, sensitivity, specificity and Cohen's kappa.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from ..directions.set import DirectionSet
from ..probes.factors import ALIASES, PROBE_NAMES
from ..utils.atomic import atomic_write_text

#: The reader's vocabulary: the automatic labeller's names (the phantom probes' factors,
#: ``probes.factors.PROBE_NAMES``, and its two verdicts), so a review and the automatic
#: labels can be compared word for word.
FACTOR_LABELS: tuple[str, ...] = PROBE_NAMES
ENTANGLED = "entangled"  # = labelling.ENTANGLED
NO_EFFECT = "no effect"  # = labelling.NO_EFFECT
LABEL_PRESETS: tuple[str, ...] = (*FACTOR_LABELS, "other", ENTANGLED, NO_EFFECT)
NOT_INTERPRETABLE = "not interpretable"  # older reviews' word; counts like "entangled"
#: Labels that are a verdict of "no single meaning": never counted as interpretable.
UNINTERPRETABLE_LABELS = frozenset({ENTANGLED, NO_EFFECT, NOT_INTERPRETABLE})
#: Words of earlier reviews that name an automatic label differently.
LEGACY_LABELS = ALIASES
#: What each rating means, shown beside the 1-5 buttons.
RATING_ANCHORS: dict[int, str] = {
    1: "no visible change",
    2: "a change, but several things move at once",
    3: "one main change with visible side effects",
    4: "one clear change, slight side effects",
    5: "one clean anatomical change",
}
FORMAT = "napari-latentdirs/review/1"
CSV_FIELDS = ("position", "source", "index", "label", "rating", "notes", "reader", "time")
SOURCES = ("discovered", "random")
MAX_TEXT = 10_000  # characters in one label, note or name: a review is typed by hand


class ReviewFormatError(ValueError):
    """A review file that does not follow the format: names the file and the field."""


def canonical_label(label: str) -> str:
    """A reader's label in the automatic labeller's words (case and legacy spellings)."""
    text = label.strip()
    low = text.lower()
    if low in LABEL_PRESETS or low == NOT_INTERPRETABLE:
        return low
    return LEGACY_LABELS.get(low, text)


@dataclass
class ReviewItem:
    position: int  # order shown to the reader
    source: str  # "discovered" or "random"
    index: int  # column of A, or row of the random bank
    label: str = ""
    rating: int | None = None  # 1 (no visible change) .. 5 (one clean anatomical change)
    notes: str = ""
    time: str = ""

    @property
    def reviewed(self) -> bool:
        return bool(self.label) or self.rating is not None

    @property
    def judged_interpretable(self) -> bool:
        """The reader's verdict: a label that names one effect (not empty, "entangled",
        "no effect" or "not interpretable") and a rating >= 3 when rated."""
        label = canonical_label(self.label).lower()
        if not label or label in UNINTERPRETABLE_LABELS:
            return False
        return self.rating is None or self.rating >= 3


@dataclass
class ReviewSession:
    directions_path: str
    reader: str = "reader"
    blind: bool = False
    seed: int = 0
    items: list[ReviewItem] = field(default_factory=list)
    random_bank: np.ndarray | None = None  # (n_random, d)
    generator: str = ""  # fingerprint copied from the direction set

    # -- building --------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        directions: DirectionSet,
        directions_path: str | Path,
        reader: str = "reader",
        blind: bool = False,
        n_random: int | None = None,
        seed: int = 0,
        indices: list[int] | None = None,
    ) -> ReviewSession:
        """Items for ``indices`` (default: all columns); blind mode adds ``n_random`` random ones."""
        indices = list(range(directions.K)) if indices is None else [int(i) for i in indices]
        bad = [i for i in indices if not 0 <= i < directions.K]
        if bad:
            raise ValueError(f"direction indices {bad} out of range for K={directions.K}")
        entries: list[tuple[str, int]] = [("discovered", i) for i in indices]
        bank = None
        if blind:
            n_random = len(indices) if n_random is None else int(n_random)
            rng = np.random.default_rng(seed)
            norms = np.linalg.norm(directions.A[:, indices], axis=0)
            scale = float(norms.mean()) if len(norms) else 1.0
            bank = rng.standard_normal((n_random, directions.latent_dim)).astype(np.float32)
            bank *= scale / np.linalg.norm(bank, axis=1, keepdims=True)
            entries += [("random", j) for j in range(n_random)]
            order = rng.permutation(len(entries))
            entries = [entries[i] for i in order]
        items = [ReviewItem(position=p, source=s, index=i) for p, (s, i) in enumerate(entries)]
        return cls(str(directions_path), reader, blind, seed, items, bank, directions.generator)

    def vector(self, item: ReviewItem, directions: DirectionSet) -> np.ndarray:
        if item.source == "random":
            if self.random_bank is None:
                raise ValueError("this session has no random directions")
            return self.random_bank[item.index]
        return directions.direction(item.index)

    def title(self, item: ReviewItem, directions: DirectionSet | None = None) -> str:
        """What the reader sees: identity hidden in blind mode."""
        if self.blind:
            return f"item {item.position + 1} of {len(self.items)}"
        label = ""
        if directions is not None and directions.labels:
            label = f" ({directions.labels[item.index]})"
        return f"direction {item.index}{label}"

    # -- recording -------------------------------------------------------------------------
    def record(self, position: int, label: str = "", rating: int | None = None, notes: str = "") -> ReviewItem:
        if rating is not None and not 1 <= int(rating) <= 5:
            raise ValueError(f"rating must be 1..5, got {rating}")
        if not isinstance(position, int) or not 0 <= position < len(self.items):
            raise ValueError(f"no item at position {position} (the session has {len(self.items)})")
        item = self.items[position]
        item.label = canonical_label(label)
        item.rating = None if rating is None else int(rating)
        item.notes = notes
        item.time = time.strftime("%Y-%m-%dT%H:%M:%S")
        return item

    @property
    def done(self) -> bool:
        return all(it.reviewed for it in self.items)

    # -- files -----------------------------------------------------------------------------
    @staticmethod
    def default_path(directions_path: str | Path, reader: str = "reader") -> Path:
        p = Path(directions_path)
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in reader) or "reader"
        return p.with_name(f"{p.stem}.review-{safe}.json")

    def save(self, path: str | Path | None = None) -> tuple[Path, Path]:
        """Write JSON (complete) and CSV (one row per item) beside the direction set."""
        json_path = Path(path) if path is not None else self.default_path(self.directions_path, self.reader)
        doc: dict[str, Any] = {
            "format": FORMAT,
            "directions": self.directions_path,
            "generator": self.generator,
            "reader": self.reader,
            "blind": self.blind,
            "seed": self.seed,
            "random_bank": None if self.random_bank is None else self.random_bank.tolist(),
            "items": [asdict(it) for it in self.items],
            "score": score(self) if self.blind else None,
        }
        text = json.dumps(doc, indent=2)
        _parse_review(json.loads(text), str(json_path))  # never save a review that could not be loaded back
        atomic_write_text(json_path, text)
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=CSV_FIELDS)
        w.writeheader()
        for it in self.items:
            row = asdict(it)
            row["reader"] = self.reader
            row["rating"] = "" if it.rating is None else it.rating
            w.writerow({k: row[k] for k in CSV_FIELDS})
        csv_path = json_path.with_suffix(".csv")
        atomic_write_text(csv_path, buf.getvalue())
        return json_path, csv_path

    @classmethod
    def load(cls, path: str | Path, directions: DirectionSet | None = None) -> ReviewSession:
        """Read a review file, checking every field (types, ranges, known keys).

        A review file is plain JSON that anyone can edit or send, and its values reach
        the widget and the HTML report: anything outside the format raises
        :class:`ReviewFormatError` naming the file and the field. With ``directions``
        the item indices are also checked against its K."""
        path = Path(path)
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError as exc:
            raise ReviewFormatError(f"{path}: not UTF-8 text ({exc.reason})") from None
        except json.JSONDecodeError as exc:
            raise ReviewFormatError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
        session = _parse_review(doc, str(path))
        if directions is not None:
            session.check_against(directions, str(path))
        return session

    def check_against(self, directions: DirectionSet, where: str = "review") -> None:
        """Every discovered index is a column of ``directions``, every random one fits the bank."""
        for it in self.items:
            if it.source == "discovered" and it.index >= directions.K:
                raise ReviewFormatError(f"{where}: item {it.position} names direction {it.index}, but the set has K={directions.K}")
        if self.random_bank is not None and self.random_bank.shape[1] != directions.latent_dim:
            raise ReviewFormatError(
                f"{where}: random directions have dimension {self.random_bank.shape[1]}, the set {directions.latent_dim}")


_DOC_KEYS = {"format", "directions", "generator", "reader", "blind", "seed", "random_bank", "items", "score"}
_ITEM_KEYS = {f.name for f in fields(ReviewItem)}


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _text(v: Any, where: str, *, required: bool = False) -> str:
    if v is None and not required:
        return ""
    if not isinstance(v, str):
        raise ReviewFormatError(f"{where}: expected text, got {type(v).__name__}")
    if len(v) > MAX_TEXT:
        raise ReviewFormatError(f"{where}: {len(v)} characters (at most {MAX_TEXT})")
    return v


def _parse_review(doc: Any, path: str) -> ReviewSession:
    if not isinstance(doc, dict):
        raise ReviewFormatError(f"{path}: expected a JSON object, got {type(doc).__name__}")
    if doc.get("format") != FORMAT:
        raise ReviewFormatError(f"{path} is not a napari-latentdirs review file (format {doc.get('format')!r})")
    unknown = sorted(set(doc) - _DOC_KEYS)
    if unknown:
        raise ReviewFormatError(f"{path}: unknown keys {unknown}")
    directions = _text(doc.get("directions"), f"{path}: 'directions'", required=True)
    reader = _text(doc.get("reader", "reader"), f"{path}: 'reader'") or "reader"
    generator = _text(doc.get("generator", ""), f"{path}: 'generator'")
    blind = doc.get("blind", False)
    if not isinstance(blind, bool):
        raise ReviewFormatError(f"{path}: 'blind' must be true or false, got {blind!r}"[:300])
    seed = doc.get("seed", 0)
    if not _is_int(seed) or not 0 <= seed < 2**63:
        raise ReviewFormatError(f"{path}: 'seed' must be a non-negative integer, got {seed!r}"[:300])
    score_doc = doc.get("score")
    if score_doc is not None and not isinstance(score_doc, dict):
        raise ReviewFormatError(f"{path}: 'score' must be an object or null")  # recomputed, never trusted
    bank = _parse_bank(doc.get("random_bank"), path)
    raw_items = doc.get("items")
    if not isinstance(raw_items, list):
        raise ReviewFormatError(f"{path}: 'items' must be a list")
    items = [_parse_item(raw, n, bank, f"{path}: item {n}") for n, raw in enumerate(raw_items)]
    return ReviewSession(directions, reader, blind, seed, items, bank, generator)


def _parse_bank(bank: Any, path: str) -> np.ndarray | None:
    if bank is None:
        return None
    if not isinstance(bank, list) or not all(isinstance(row, list) for row in bank):
        raise ReviewFormatError(f"{path}: 'random_bank' must be a list of number lists")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for row in bank for v in row):
        raise ReviewFormatError(f"{path}: 'random_bank' holds something other than numbers")
    if len({len(row) for row in bank}) > 1:
        raise ReviewFormatError(f"{path}: 'random_bank' rows differ in length")
    arr = np.asarray(bank, dtype=np.float32).reshape(len(bank), -1)
    if not np.all(np.isfinite(arr)):
        raise ReviewFormatError(f"{path}: 'random_bank' holds NaN or infinite values")
    return arr


def _parse_item(raw: Any, n: int, bank: np.ndarray | None, where: str) -> ReviewItem:
    if not isinstance(raw, dict):
        raise ReviewFormatError(f"{where}: expected an object, got {type(raw).__name__}")
    unknown = sorted(set(raw) - _ITEM_KEYS)
    if unknown:
        raise ReviewFormatError(f"{where}: unknown keys {unknown}"[:300])
    for key in ("position", "source", "index"):
        if key not in raw:
            raise ReviewFormatError(f"{where}: missing '{key}'")
    position, source, index, rating = raw["position"], raw["source"], raw["index"], raw.get("rating")
    if not _is_int(position) or position != n:
        raise ReviewFormatError(f"{where}: 'position' must be the integer {n} (items are stored in the order shown)")
    if source not in SOURCES:
        raise ReviewFormatError(f"{where}: 'source' must be one of {SOURCES}")
    if not _is_int(index) or index < 0:
        raise ReviewFormatError(f"{where}: 'index' must be a non-negative integer")
    if source == "random" and (bank is None or index >= len(bank)):
        raise ReviewFormatError(f"{where}: random direction {index} is not in the file's random_bank")
    if rating is not None and (not _is_int(rating) or not 1 <= rating <= 5):
        raise ReviewFormatError(f"{where}: 'rating' must be an integer 1-5 or null")
    return ReviewItem(
        position=position,
        source=source,
        index=index,
        label=_text(raw.get("label", ""), f"{where}: 'label'"),
        rating=rating,
        notes=_text(raw.get("notes", ""), f"{where}: 'notes'"),
        time=_text(raw.get("time", ""), f"{where}: 'time'"),
    )


def score(session: ReviewSession) -> dict[str, float]:
    """How well the reader separated discovered from random directions.

    * ``accuracy``: calling an item "discovered" iff judged interpretable
      ("entangled", "no effect" and "not interpretable" are not);
    * ``sensitivity`` / ``specificity``: discovered items judged interpretable,
      random items judged not interpretable (both when both kinds were reviewed);
    * ``auc``: probability that a random discovered item is rated above a
      random random one (Mann-Whitney, ties count half; unrated = 0);
    * interpretable fractions and mean ratings per source.
    """
    rated = [it for it in session.items if it.reviewed]
    disc = [it for it in rated if it.source == "discovered"]
    rand = [it for it in rated if it.source == "random"]
    out: dict[str, float] = {"n_reviewed": float(len(rated)), "n_discovered": float(len(disc)), "n_random": float(len(rand))}
    if not rated:
        return out
    correct = sum(it.judged_interpretable == (it.source == "discovered") for it in rated)
    out["accuracy"] = correct / len(rated)
    for name, group in (("discovered", disc), ("random", rand)):
        if group:
            out[f"interpretable_{name}"] = float(np.mean([it.judged_interpretable for it in group]))
            ratings = [it.rating for it in group if it.rating is not None]
            if ratings:
                out[f"mean_rating_{name}"] = float(np.mean(ratings))
    if disc and rand:
        out["sensitivity"] = out["interpretable_discovered"]
        out["specificity"] = 1.0 - out["interpretable_random"]
        rd = np.array([it.rating or 0 for it in disc], dtype=float)
        rr = np.array([it.rating or 0 for it in rand], dtype=float)
        out["auc"] = float(((rd[:, None] > rr[None, :]).sum() + 0.5 * (rd[:, None] == rr[None, :]).sum()) / (rd.size * rr.size))
    return out


def cohen_kappa(a: list[bool], b: list[bool]) -> float:
    """Cohen's kappa of two readers' yes/no calls on the same items (NaN when undefined:
    no items, or both readers gave one answer throughout)."""
    if len(a) != len(b):
        raise ValueError("both readers must call the same items")
    if not a:
        return float("nan")
    x, y = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    observed = float(np.mean(x == y))
    pa, pb = float(x.mean()), float(y.mean())
    expected = pa * pb + (1 - pa) * (1 - pb)
    if expected >= 1.0:
        return float("nan")
    return (observed - expected) / (1.0 - expected)


def _item_key(session: ReviewSession, item: ReviewItem) -> tuple:
    # random items are the same item for two readers only if their vectors are the same
    if item.source == "random" and session.random_bank is not None:
        return ("random", np.round(session.random_bank[item.index], 5).tobytes())
    return (item.source, item.index)


def reader_study(sessions: list[ReviewSession]) -> dict[str, Any]:
    """Several readers of one direction set, as CT reader studies report them.

    Per reader: accuracy, sensitivity and specificity of the "discovered" call
    (see :func:`score`); per pair of readers: Cohen's kappa of the interpretable
    call on the items both reviewed; and the means over readers and pairs."""
    readers = []
    for s in sessions:
        sc = score(s)
        readers.append({"reader": s.reader, "n": int(sc["n_reviewed"]),
                        **{k: sc[k] for k in ("accuracy", "sensitivity", "specificity") if k in sc}})
    pairs = []
    for i in range(len(sessions)):
        for j in range(i + 1, len(sessions)):
            a = {_item_key(sessions[i], it): it.judged_interpretable for it in sessions[i].items if it.reviewed}
            b = {_item_key(sessions[j], it): it.judged_interpretable for it in sessions[j].items if it.reviewed}
            common = [k for k in a if k in b]
            pairs.append({"readers": (sessions[i].reader, sessions[j].reader), "n": len(common),
                          "kappa": cohen_kappa([a[k] for k in common], [b[k] for k in common])})
    out: dict[str, Any] = {"readers": readers, "pairs": pairs}
    for key in ("accuracy", "sensitivity", "specificity"):
        vals = [r[key] for r in readers if key in r]
        if vals:
            out[f"mean_{key}"] = float(np.mean(vals))
    kappas = [p["kappa"] for p in pairs if np.isfinite(p["kappa"])]
    if kappas:
        out["mean_kappa"] = float(np.mean(kappas))
    return out


def reviews_beside(directions_path: str | Path) -> list[Path]:
    """The review files saved beside a direction set (one per reader)."""
    p = Path(directions_path)
    return sorted(p.parent.glob(f"{glob.escape(p.stem)}.review-*.json"))
