"""The radiologist's pass over a direction set: labels, ratings, notes, blind mode.

A :class:`ReviewSession` is a list of items to show, one per direction. In
*blind* mode the discovered directions are mixed with random directions
(seeded Gaussian vectors scaled to the discovered directions' mean norm), the
order is shuffled with a seed and the widget shows only "item 3 of 12"; at
the end :func:`score` reports how well the reader told discovered from
random -- the paper's Figs. 9 and 10 by eye, made into numbers.

Reviews are saved beside the direction set as ``<stem>.review-<reader>.json``
(everything, including the random directions, so a blind session reloads
exactly) and ``.csv`` (one row per item, for spreadsheets).
"""

from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..models.direction_set import DirectionSet
from ..utils.atomic import atomic_write_text

LABEL_PRESETS: tuple[str, ...] = (
    "width",
    "height",
    "size",
    "rotation",
    "y-position",
    "thickness",
    "breast size",
    "z-position",
    "other",
    "not interpretable",
)
NOT_INTERPRETABLE = "not interpretable"
FORMAT = "napari-latentdirs/review/1"
CSV_FIELDS = ("position", "source", "index", "label", "rating", "notes", "reader", "time")


@dataclass
class ReviewItem:
    position: int  # order shown to the reader
    source: str  # "discovered" or "random"
    index: int  # column of A, or row of the random bank
    label: str = ""
    rating: int | None = None  # 1 (meaningless) .. 5 (clear, clinically plausible)
    notes: str = ""
    time: str = ""

    @property
    def reviewed(self) -> bool:
        return bool(self.label) or self.rating is not None

    @property
    def judged_interpretable(self) -> bool:
        """The reader's verdict: a label other than 'not interpretable' and a rating >= 3."""
        if self.label.strip().lower() == NOT_INTERPRETABLE or not self.label.strip():
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
        item = self.items[position]
        item.label = label.strip()
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
        atomic_write_text(json_path, json.dumps(doc, indent=2))
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
    def load(cls, path: str | Path) -> ReviewSession:
        doc = json.loads(Path(path).read_text())
        if doc.get("format") != FORMAT:
            raise ValueError(f"{path} is not a napari-latentdirs review file")
        bank = doc.get("random_bank")
        return cls(
            directions_path=doc["directions"],
            reader=doc.get("reader", "reader"),
            blind=bool(doc.get("blind")),
            seed=int(doc.get("seed", 0)),
            items=[ReviewItem(**it) for it in doc["items"]],
            random_bank=None if bank is None else np.asarray(bank, dtype=np.float32),
            generator=doc.get("generator", ""),
        )


def score(session: ReviewSession) -> dict[str, float]:
    """How well the reader separated discovered from random directions.

    * ``accuracy``: calling an item "discovered" iff judged interpretable;
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
        rd = np.array([it.rating or 0 for it in disc], dtype=float)
        rr = np.array([it.rating or 0 for it in rand], dtype=float)
        out["auc"] = float(((rd[:, None] > rr[None, :]).sum() + 0.5 * (rd[:, None] == rr[None, :]).sum()) / (rd.size * rr.size))
    return out
