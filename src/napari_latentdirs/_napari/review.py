"""Review widget: the radiologist's pass over a direction set.

For each item the widget streams its shifted stack (latents x shifts) into
the "review stack" layer and can animate it; the reader picks a label preset
or types one, rates 1-5 and adds notes. Blind mode hides which direction is
shown and mixes in random directions in a seeded, shuffled order; the score
at the end says how well discovered and random directions were told apart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from magicgui.widgets import FileEdit
from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QWidget,
)

from ..analysis.demo import DEMO_NAMES, demo_model
from ..analysis.navigation import (
    WINDOWS,
    StackChunk,
    StackRequest,
    default_shift,
    model_pixel_mm,
    random_latents,
    shift_grid,
)
from ..analysis.review import (
    LABEL_PRESETS,
    RATING_ANCHORS,
    ReviewSession,
    reader_study,
    reviews_beside,
    score,
)
from ..directions.set import DirectionSet
from ..models.interface import LatentGenerator
from .navigator import _wrapping_label
from .placement import add_generated, mosaic, set_window
from .scroll import compact_combos, fit_width, scrolling_layout
from .stack_feed import StackFeed
from .stack_view import StackView

LAYER_NAME = "review stack"
PLAY_FPS = 12.5  # 80 ms a frame
GRID_NAME = "review grid"


def spread_indices(K: int, n: int) -> list[int]:
    """``n`` directions spread evenly over 0..K-1 (the first N were all from one end of the set)."""
    n = max(1, min(n, K))
    return sorted({int(round(v)) for v in np.linspace(0, K - 1, n)})


def review_home(directions_path: str | Path) -> Path:
    """Where the reviews of a set live, as the set's path there: the set itself, or for a set
    inside the installed package (the demos) the same name in ``<user folder>/reviews``."""
    from ..analysis.demo import DEMO_DIR
    from .settings import settings_path

    p = Path(directions_path).resolve()
    if p.is_relative_to(DEMO_DIR.resolve()):
        return settings_path().parent / "reviews" / p.name
    return p


def review_path_for(directions_path: str | Path, reader: str) -> Path:
    """Where ``reader``'s review of ``directions_path`` is saved (never into the package)."""
    return ReviewSession.default_path(review_home(directions_path), reader)


class ReviewWidget(QWidget):
    item_shown = Signal(int)
    stack_complete = Signal(int)

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.generator: LatentGenerator | None = None
        self.directions: DirectionSet | None = None
        self.directions_path: Path | None = None
        self.session: ReviewSession | None = None
        self.position = 0
        self.z: np.ndarray | None = None
        self.saved: tuple[Path, Path] | None = None
        self._grid_shift = -1
        self.view = StackView(self, napari_viewer, LAYER_NAME)
        self.feed = StackFeed(self, self._on_chunk, lambda e: self.status.setText(f"generation failed: {e}"), viewer=napari_viewer, name="review")
        self._build_ui()
        fit_width(self)

    # ------------------------------------------------------------------ UI
    def _build_ui(self) -> None:
        lay = scrolling_layout(self)
        setup = QGroupBox("Session")
        f = QFormLayout(setup)
        self.generator_edit = FileEdit(mode="r", filter="*.safetensors")
        self.directions_edit = FileEdit(mode="r", filter="*.safetensors")
        self.demo_combo = QComboBox()
        self.demo_combo.addItems(["(files above)", *[f"demo {n.upper()}" for n in DEMO_NAMES]])
        self.reader_edit = QLineEdit("reader")
        self.blind_check = QCheckBox("blind: hide identity, mix in random directions")
        self.blind_check.setChecked(True)
        self.n_random = QSpinBox()
        self.n_random.setRange(0, 512)
        self.n_random.setValue(5)
        self.n_dirs = QSpinBox()
        self.n_dirs.setRange(1, 512)
        self.n_dirs.setValue(5)
        self.n_dirs.setToolTip("review N discovered directions spread evenly across the set, from the first to the "
                               "last (the paper shows 5 next to 5 random)")
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 2**31 - 1)
        self.n_latents = QSpinBox()
        self.n_latents.setRange(1, 32)
        self.n_latents.setValue(8)
        self.frames_spin = QSpinBox()
        self.frames_spin.setRange(3, 101)
        self.frames_spin.setValue(21)
        tips = {
            self.generator_edit.native: "the generator file of the set to review",
            self.directions_edit.native: "the direction set to review",
            self.demo_combo: "or a bundled demo model and its set (reviews of a demo go to your user folder)",
            self.reader_edit: "your name: each reader's review is a file of its own",
            self.blind_check: "hide which direction is shown and mix in random ones: the score says whether the "
                              "discovered ones could be told apart",
            self.n_random: "random directions mixed in (blind mode)",
            self.seed_spin: "seeds the order, the random directions and the latents",
            self.n_latents: "latents per item (rows of the stack)",
            self.frames_spin: "shifts along each sweep",
        }
        for w, tip in tips.items():
            w.setToolTip(tip)
        f.addRow("generator", self.generator_edit.native)
        f.addRow("directions", self.directions_edit.native)
        f.addRow("or", self.demo_combo)
        f.addRow("reader", self.reader_edit)
        f.addRow(self.blind_check)
        f.addRow("discovered shown", self.n_dirs)
        f.addRow("random mixed in", self.n_random)
        f.addRow("seed", self.seed_spin)
        f.addRow("latents per item", self.n_latents)
        f.addRow("frames", self.frames_spin)
        row = QHBoxLayout()
        self.start_btn = QPushButton("Start review")
        self.start_btn.setToolTip("start a new review of the set chosen above")
        self.start_btn.clicked.connect(self._start_clicked)
        self.load_btn = QPushButton("Load review...")
        self.load_btn.setToolTip("continue a saved review (its first unreviewed item)")
        self.load_btn.clicked.connect(self._load_clicked)
        row.addWidget(self.start_btn)
        row.addWidget(self.load_btn)
        f.addRow(row)
        lay.addWidget(setup)

        item = QGroupBox("Item")
        g = QFormLayout(item)
        self.title = QLabel("-")
        self.title.setStyleSheet("font-weight: bold")
        g.addRow(self.title)
        self.label_combo = QComboBox()
        self.label_combo.setEditable(True)
        self.label_combo.addItems(["", *LABEL_PRESETS])
        self.label_combo.lineEdit().setPlaceholderText("preset or free text")
        self.label_combo.setToolTip("what the direction changes: a preset factor, 'entangled', 'no effect', or your words")
        g.addRow("label", self.label_combo)
        rrow = QHBoxLayout()
        self.rating_group = QButtonGroup(self)
        for r in range(1, 6):
            b = QRadioButton(str(r))
            b.setToolTip(f"{r} = {RATING_ANCHORS[r]}")
            self.rating_group.addButton(b, r)
            rrow.addWidget(b)
        g.addRow("rating", rrow)
        anchors = QLabel(f"1 = {RATING_ANCHORS[1]} … 5 = {RATING_ANCHORS[5]}")
        anchors.setWordWrap(True)
        anchors.setStyleSheet("color: gray")
        g.addRow(anchors)
        self.rating_hint = QLabel("")
        self.rating_hint.setWordWrap(True)
        self.rating_group.idToggled.connect(self._rating_toggled)
        g.addRow(self.rating_hint)
        self.notes = QPlainTextEdit()
        self.notes.setToolTip("anything worth keeping about this item")
        self.notes.setFixedHeight(60)
        g.addRow("notes", self.notes)
        nav = QHBoxLayout()
        self.prev_btn = QPushButton("< Prev")
        self.next_btn = QPushButton("Save && next >")
        self.play_btn = QPushButton("Play")
        self.play_btn.setCheckable(True)
        self.prev_btn.clicked.connect(lambda: self.go(self.position - 1))
        self.next_btn.clicked.connect(self.record_and_next)
        self.play_btn.toggled.connect(self.set_playing)
        self.prev_btn.setToolTip("back to the previous item")
        self.next_btn.setToolTip("save this item's label, rating and notes, then show the next")
        self.play_btn.setToolTip("play the sweep back and forth")
        for b in (self.prev_btn, self.play_btn, self.next_btn):
            nav.addWidget(b)
        g.addRow(nav)
        self.window_combo = QComboBox()
        self.window_combo.addItems(list(WINDOWS))
        self.window_combo.currentTextChanged.connect(self._apply_window)
        self.window_combo.setToolTip("HU window of the review stack, the CT and every generated layer beside it")
        g.addRow("window", self.window_combo)
        self.grid_check = QCheckBox("grid: every latent at this shift")
        self.grid_check.setChecked(True)
        self.grid_check.setToolTip("a second layer with all the item's latents side by side at the shift on "
                                   "screen: one direction's effect on several bodies at once")
        self.grid_check.toggled.connect(lambda _on: self._update_grid())
        g.addRow(self.grid_check)
        self.alpha_label = QLabel("shift α: -")
        self.alpha_label.setStyleSheet("font-weight: bold")
        g.addRow(self.alpha_label)
        lay.addWidget(item)
        self.item_box = item
        self.result = _wrapping_label("")
        lay.addWidget(self.result)
        self.compare_btn = QPushButton("Compare readers")
        self.compare_btn.setToolTip("accuracy, specificity and Cohen's κ over every review saved beside the direction set")
        self.compare_btn.clicked.connect(self.compare_readers)
        lay.addWidget(self.compare_btn)
        self.status = _wrapping_label("")
        lay.addWidget(self.status)
        lay.addStretch(1)
        item.setEnabled(False)
        compact_combos(self)
        self.viewer.dims.events.current_step.connect(self._show_alpha)

    # ------------------------------------------------------------------ sessions
    def _paths(self) -> tuple[Path, Path]:
        i = self.demo_combo.currentIndex()
        if i > 0:
            m = demo_model(DEMO_NAMES[i - 1])
            return m.generator, m.directions
        g, d = str(self.generator_edit.value or ""), str(self.directions_edit.value or "")
        if not g or g == "." or not d or d == ".":
            raise ValueError("choose a generator and a direction set (or a demo)")
        return Path(g), Path(d)

    def _start_clicked(self) -> None:
        try:
            self.start(*self._paths())
        except (OSError, ValueError) as exc:
            self.status.setText(str(exc))

    def _load_clicked(self) -> None:
        from qtpy.QtWidgets import QFileDialog

        path, _ = QFileDialog.getOpenFileName(self, "Load review", "", "Review (*.review-*.json)")
        if path:
            try:
                g, _d = self._paths()
                self.load_review(path, g)
            except (OSError, ValueError, IndexError) as exc:
                self.status.setText(str(exc))

    def _set_model(self, generator_path: Path, directions_path: Path) -> None:
        from ..models.registry import load_generator

        self.generator = load_generator(generator_path)
        self.directions = DirectionSet.load(directions_path)
        self.directions_path = Path(directions_path)
        if self.directions.latent_dim != self.generator.latent_dim:
            raise ValueError("the direction set does not belong to this generator (latent sizes differ)")
        self.feed.set_generator(self.generator)
        warning = self.directions.not_learned()
        if warning:
            from napari.utils.notifications import show_warning

            show_warning(f"review: {warning}")
            self.status.setText(f"⚠ {warning}")

    def start(self, generator_path: Path, directions_path: Path) -> None:
        self._set_model(generator_path, directions_path)
        assert self.directions is not None
        n = min(self.n_dirs.value(), self.directions.K)
        self.session = ReviewSession.create(
            self.directions,
            self.directions_path,
            reader=self.reader_edit.text().strip() or "reader",
            blind=self.blind_check.isChecked(),
            n_random=self.n_random.value(),
            seed=self.seed_spin.value(),
            indices=spread_indices(self.directions.K, n),
        )
        self._begin()

    def load_review(self, review_path: str | Path, generator_path: Path) -> None:
        """Reopen a saved review: every field checked, indices against the direction set."""
        session = ReviewSession.load(review_path)
        self._set_model(Path(generator_path), Path(session.directions_path))
        assert self.directions is not None
        session.check_against(self.directions, str(review_path))
        self.session = session
        self.reader_edit.setText(session.reader)
        self.blind_check.setChecked(session.blind)
        first_open = next((it.position for it in session.items if not it.reviewed), 0)
        self._begin(first_open)

    def _begin(self, position: int = 0) -> None:
        assert self.session is not None and self.generator is not None
        # the same latents for every item, so items differ only by their direction
        self.z = random_latents(self.n_latents.value(), self.generator.latent_dim, self.session.seed)
        self.item_box.setEnabled(True)
        self.result.setText("")
        self.go(position)
        where = self.review_path().parent
        self.status.setText(f"reviewing {len(self.session.items)} items: watch the sweep (Play), choose a label and a "
                            f"rating, then Save & next. Saved after every item in {where}")

    # ------------------------------------------------------------------ items
    def go(self, position: int) -> None:
        if self.session is None or self.directions is None or self.generator is None:
            return
        position = int(np.clip(position, 0, len(self.session.items) - 1))
        self.position = position
        item = self.session.items[position]
        self.title.setText(self.session.title(item, self.directions))
        self.label_combo.setCurrentText(item.label)
        btn = self.rating_group.button(item.rating) if item.rating else None
        self.rating_group.setExclusive(False)
        for b in self.rating_group.buttons():
            b.setChecked(False)
        self.rating_group.setExclusive(True)
        if btn is not None:
            btn.setChecked(True)
        self.notes.setPlainText(item.notes)
        self.prev_btn.setEnabled(position > 0)
        half = default_shift(self.directions)
        shifts = shift_grid(-half, half, self.frames_spin.value())
        assert self.z is not None
        vec = self.session.vector(item, self.directions)
        self.feed.submit(StackRequest(self.z, vec, shifts, (0, int(np.argmin(np.abs(shifts))))))
        self.item_shown.emit(position)

    def record(self) -> None:
        if self.session is None:
            return
        rating = self.rating_group.checkedId()
        self.session.record(self.position, self.label_combo.currentText(), rating if rating > 0 else None, self.notes.toPlainText())

    def record_and_next(self) -> None:
        if self.session is None:
            return
        self.record()
        self.save()
        if self.position + 1 < len(self.session.items):
            self.go(self.position + 1)
        else:
            self.finish()

    def save(self) -> tuple[Path, Path] | None:
        if self.session is None:
            return None
        path = self.review_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        self.saved = self.session.save(path)
        self.status.setText(f"saved {self.saved[0].name} and {self.saved[1].name} in {self.saved[0].parent}")
        return self.saved

    def review_path(self) -> Path:
        """Beside the direction set; for a set inside the installed package (a demo), in the
        user's folder instead (never write into the package)."""
        assert self.session is not None
        return review_path_for(self.session.directions_path, self.session.reader)

    def _rating_toggled(self, rid: int, on: bool) -> None:
        if on:
            self.rating_hint.setText(f"{rid} = {RATING_ANCHORS[rid]}")

    def compare_readers(self) -> dict | None:
        """Every reader's review of this direction set, as a reader study (>= 2 readers)."""
        if self.directions_path is None:
            self.result.setText("start or load a review first")
            return None
        sessions, bad = [], []
        for path in reviews_beside(review_home(self.directions_path)):
            try:
                sessions.append(ReviewSession.load(path, directions=self.directions))
            except (OSError, ValueError) as exc:
                bad.append(f"skipped {path.name}: {exc}")
        if len(sessions) < 2:
            self.result.setText("\n".join([f"{len(sessions)} review(s) beside the set: a reader study needs two or more", *bad]))
            return None
        st = reader_study(sessions)
        lines = [f"{len(sessions)} readers of {self.directions_path.name}:"]
        for r in st["readers"]:
            lines.append(f"  {r['reader']}: accuracy {r.get('accuracy', float('nan')):.2f}, sensitivity "
                         f"{r.get('sensitivity', float('nan')):.2f}, specificity {r.get('specificity', float('nan')):.2f} ({r['n']} items)")
        for p in st["pairs"]:
            lines.append(f"  κ {p['readers'][0]} / {p['readers'][1]} = {p['kappa']:.2f} over {p['n']} common items")
        if "mean_kappa" in st:
            lines.append(f"mean Cohen's κ {st['mean_kappa']:.2f}")
        self.result.setText("\n".join(lines + bad))
        return st

    def finish(self) -> dict[str, float]:
        assert self.session is not None
        sc = score(self.session)
        if self.session.blind and "accuracy" in sc:
            lines = [
                f"Reviewed {int(sc['n_reviewed'])} items ({int(sc['n_discovered'])} discovered, {int(sc['n_random'])} random).",
                f"Told discovered from random: accuracy {sc['accuracy']:.2f}" + (f", AUC {sc['auc']:.2f}" if "auc" in sc else "")
                + (f", sensitivity {sc['sensitivity']:.2f}, specificity {sc['specificity']:.2f}" if "specificity" in sc else ""),
            ]
            for src in ("discovered", "random"):
                if f"interpretable_{src}" in sc:
                    lines.append(f"{src}: {100 * sc[f'interpretable_{src}']:.0f}% judged interpretable" + (f", mean rating {sc[f'mean_rating_{src}']:.1f}" if f"mean_rating_{src}" in sc else ""))
            lines.append("Key (what each item was): " + "; ".join(
                f"{it.position + 1} {it.source}" + (f" #{it.index}" if it.source == "discovered" else "")
                for it in self.session.items))
            self.result.setText("\n".join(lines))
        else:
            self.result.setText(f"Reviewed {int(sc['n_reviewed'])} directions.")
        return sc

    # ------------------------------------------------------------------ stack layer
    def _on_chunk(self, req: StackRequest, chunk: StackChunk) -> None:
        px = model_pixel_mm(chunk.frames.shape[-1], getattr(self.generator, "meta", None))
        self.view.apply(req, chunk, pixel_mm=px, window=self.window_combo.currentText())
        self._show_alpha()
        if chunk.done:
            self._update_grid()
            self.stack_complete.emit(chunk.ticket)

    def current_alpha(self) -> float | None:
        return self.view.current_alpha()

    def _show_alpha(self, *_: Any) -> None:
        alpha = self.current_alpha()
        self.alpha_label.setText("shift α: -" if alpha is None else f"shift α = {alpha:+.2f}")
        pos = self.view.position()
        if pos is not None and pos[1] != self._grid_shift:
            self._update_grid()

    def _update_grid(self) -> None:
        """The "review grid" layer: every latent of the item at the shift on screen, tiled."""
        stack, pos = self.view.stack, self.view.position()
        grid = self.viewer.layers[GRID_NAME] if GRID_NAME in self.viewer.layers else None  # noqa: SIM401
        if not self.grid_check.isChecked() or stack is None or pos is None:
            if grid is not None:
                self.viewer.layers.remove(grid)
            self._grid_shift = -1
            return
        s = min(max(pos[1], 0), stack.shape[1] - 1)
        tiles = mosaic(stack[:, s], cols=min(4, stack.shape[0]))
        self._grid_shift = s
        if grid is not None and grid.data.shape == tiles.shape:
            grid.data[...] = tiles
            grid.refresh()
        elif grid is not None:
            grid.data = tiles
        else:
            px = model_pixel_mm(stack.shape[-1], getattr(self.generator, "meta", None))
            add_generated(self.viewer, tiles, name=GRID_NAME, pixel_mm=px, window=self.window_combo.currentText())

    def _apply_window(self, name: str) -> None:
        set_window(self.viewer, name, self.view.layer if self.view.shown else None, linked=True)

    @property
    def layer(self) -> Any:
        return self.view.layer

    def set_playing(self, on: bool) -> None:
        if on:
            self.view.play(PLAY_FPS)
        else:
            self.view.stop()

    def showEvent(self, event: Any) -> None:  # Qt API
        fit_width(self)  # again once docked: the style's fonts and scroll bar are known now
        super().showEvent(event)

    def closeEvent(self, event: Any) -> None:  # Qt API
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        self.view.stop()
        self.feed.stop()
