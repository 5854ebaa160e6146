"""The paper's Table 1: RCA and L_s for {GAN, VAE} x {ResNet, LeNet} x {ortho K=32, unit K=32, unit K=100}.

The twelve cells are defined here (the YAML files in ``training/table1/``
mirror them, and a test keeps the two in step). ``run_cell`` trains one cell;
``run_table`` trains all of them, optionally scaled down with ``steps_scale``
for a CPU, and writes ``table1.md`` (our figures next to the paper's) and
``table1.json``. Finished cells are reused, unfinished ones resume, so an
interrupted table continues where it stopped.

L_s follows the paper's convention (gamma-weighted, as the reference code
logs it); the raw mean |alpha_hat - alpha| is reported beside it.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..directions.set import DirectionSet
from ..directions.voynov import (
    DIRECTIONS_FILE,
    DirectionsConfig,
    resolve_generator,
    train_directions,
)
from ..events import Event, Finished, Stopped
from ..paper import (
    COLUMN_TITLES,
    GENERATORS,
    PAPER_TABLE1,
    RECONSTRUCTORS,
    canonical_cell,
    cell_name,
)
from ..paper import COLUMNS as PAPER_COLUMNS
from ..utils.folderlock import LOCK_NAME, hold_folder
from .folder import RunFolderError

COLUMNS: dict[str, dict[str, Any]] = {c: {"variant": v, "K": k} for c, (v, k) in PAPER_COLUMNS.items()}
ROW_TITLES = {("gan", "resnet"): "GAN ResNet", ("gan", "lenet"): "GAN LeNet",
              ("vae", "resnet"): "VAE ResNet", ("vae", "lenet"): "VAE LeNet"}

#: The paper's Table 1 (RCA, L_s) by cell name (``paper.PAPER_TABLE1``).
PAPER: dict[str, tuple[float, float]] = {cell_name(*key): v for key, v in PAPER_TABLE1.items()}
CELLS: tuple[str, ...] = tuple(cell_name(g, r, c) for g in GENERATORS for r in RECONSTRUCTORS for c in COLUMNS)


def parse_cell(cell: str) -> tuple[str, str, str]:
    cell = canonical_cell(cell)
    if cell not in CELLS:
        raise ValueError(f"unknown Table 1 cell {cell!r}; cells are {', '.join(CELLS)}")
    g, r, c = cell.split("_", 2)
    return g, r, c


def cell_config(cell: str, **overrides: Any) -> DirectionsConfig:
    """The paper's settings for one cell (steps from section 3.2, batch 128, lr 1e-4, gamma 0.25)."""
    cell = canonical_cell(cell)
    g, r, c = parse_cell(cell)
    cfg = DirectionsConfig(generator_kind=g, reconstructor="resnet18" if r == "resnet" else "lenet",
                           init="random", batch_size=128, lr=1e-4, gamma=0.25, eval_batches=100, **COLUMNS[c])
    cfg = replace(cfg, steps=cfg.total_steps)  # write the paper's count explicitly
    return replace(cfg, **overrides)


def cell_yaml(cell: str) -> str:
    """The text of ``training/table1/<cell>.yaml``."""
    import yaml

    cell = canonical_cell(cell)
    g, r, c = parse_cell(cell)
    cfg = cell_config(cell)
    rca, ls = PAPER[cell]
    keys = ("generator_kind", "reconstructor", "variant", "K", "init", "steps", "batch_size", "lr", "gamma",
            "alpha_max", "alpha_min", "eval_batches", "seed")
    body = {"cell": cell, "paper": {"rca": rca, "shift_loss": ls}, **{k: getattr(cfg, k) for k in keys}}
    head = (f"# Table 1 cell: {ROW_TITLES[(g, r)]}, {COLUMN_TITLES[c]}.\n"
            f"# latentdirs table1 --cell {cell} --generator GENERATOR --out RUN [--steps-scale S]\n")
    return head + yaml.safe_dump(body, sort_keys=False)


def run_cell(cell: str, generator: Any, out: str | Path, *, fingerprint: str = "", steps_scale: float = 1.0,
             stop: threading.Event | None = None, on_event: Callable[[Event], None] | None = None,
             **overrides: Any) -> dict[str, Any]:
    """Train one cell into ``out`` (resuming if a checkpoint is there) and return its result row."""
    out = Path(out)
    cell = canonical_cell(cell)
    cfg = cell_config(cell, steps_scale=steps_scale, generator_fingerprint=fingerprint, **overrides)
    done = out / DIRECTIONS_FILE
    if done.exists():
        ds = DirectionSet.load(done)
        if ds.meta.get("steps") == cfg.total_steps and ds.generator == fingerprint:
            return _row(cell, cfg, ds.metrics, done)
        raise ValueError(f"{out} holds a finished run with other settings; choose another output folder")
    last: Event | None = None
    for ev in train_directions(cfg, generator, out, stop):
        last = ev
        if on_event is not None:
            on_event(ev)
    if isinstance(last, Stopped):
        return {"cell": cell, "stopped_at": last.step}
    assert isinstance(last, Finished)
    return _row(cell, cfg, last.metrics, last.output)


def _row(cell: str, cfg: DirectionsConfig, metrics: dict[str, float], output: Path | None) -> dict[str, Any]:
    return {"cell": cell, "steps": cfg.total_steps, "steps_scale": cfg.steps_scale, "paper_steps": cell_config(cell).total_steps,
            "batch_size": cfg.batch_size, "rca": metrics["rca"], "shift_loss": metrics["shift_loss"],
            "shift_l1": metrics["shift_l1"], "paper_rca": PAPER[cell][0], "paper_shift_loss": PAPER[cell][1],
            "output": str(output) if output else None}


def run_table(generators: dict[str, Any], out: str | Path, *, steps_scale: float = 1.0,
              cells: Iterable[str] | None = None, note: str = "", stop: threading.Event | None = None,
              on_event: Callable[[str, Event], None] | None = None, **overrides: Any) -> list[dict[str, Any]]:
    """``generators``: {"gan": spec, "vae": spec}, a spec being a path / 'analytic' or a
    (module, fingerprint) pair. Cells whose generator is missing are skipped."""
    out = Path(out)
    check_table_folder(out)
    with hold_folder(out):  # one writer per folder (issue 22)
        return _run_table(generators, out, steps_scale=steps_scale, cells=cells, note=note, stop=stop,
                          on_event=on_event, **overrides)


#: What ``run_table`` writes in its folder besides one run folder per cell.
TABLE_FILES = ("table1.md", "table1.json")


def _our_table(path: Path) -> bool:
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return (isinstance(doc, dict) and set(doc) == {"note", "rows"} and isinstance(doc["rows"], list)
            and all(isinstance(r, dict) and canonical_cell(str(r.get("cell", ""))) in CELLS for r in doc["rows"]))


def check_table_folder(out: Path) -> None:
    """Refuse an ``--out`` holding anything ``latentdirs table1`` did not write (issue 22, item 5):
    its table1.md would be overwritten and its table1.json merged into ours. Nothing is changed."""
    if not out.exists():
        return
    if not out.is_dir():
        raise RunFolderError(f"--out {out} exists and is not a folder; nothing was changed")
    names = sorted(e.name for e in os.scandir(out)
                   if e.name != LOCK_NAME and not (e.name.startswith(".") and e.name.endswith(".tmp")))
    foreign = [n for n in names if n not in CELLS and n not in TABLE_FILES]
    if "table1.json" in names and not _our_table(out / "table1.json"):
        foreign.append("table1.json (not a table latentdirs wrote)")
    if "table1.md" in names and "table1.json" not in names:
        foreign.append("table1.md (without our table1.json)")
    if foreign:
        shown = ", ".join(foreign[:4]) + (", ..." if len(foreign) > 4 else "")
        raise RunFolderError(
            f"--out {out} holds files that `latentdirs table1` did not write ({shown}); nothing was changed. "
            "Choose a new or empty folder, or the folder of an earlier table1 run to add to it")


def _run_table(generators: dict[str, Any], out: Path, *, steps_scale: float, cells: Iterable[str] | None, note: str,
               stop: threading.Event | None, on_event: Callable[[str, Event], None] | None,
               **overrides: Any) -> list[dict[str, Any]]:
    loaded: dict[str, tuple[Any, str]] = {}
    for kind, spec in generators.items():
        if spec is None:
            continue
        if isinstance(spec, tuple):
            loaded[kind] = spec
        else:
            g, fp, _ = resolve_generator(spec, device="cpu")
            loaded[kind] = (g, fp)
    rows: list[dict[str, Any]] = []
    for cell in [canonical_cell(c) for c in cells] if cells else CELLS:
        kind = parse_cell(cell)[0]
        if kind not in loaded:
            continue
        g, fp = loaded[kind]
        cb = (lambda ev, c=cell: on_event(c, ev)) if on_event else None
        row = run_cell(cell, g, out / cell, fingerprint=fp, steps_scale=steps_scale, stop=stop, on_event=cb, **overrides)
        rows.append(row)
        if "stopped_at" in row:
            break
        write_table(rows, out, steps_scale=steps_scale, note=note)
    return rows


def write_table(rows: list[dict[str, Any]], out: Path, *, steps_scale: float, note: str = "") -> Path:
    """Write table1.json / table1.md, merged with the cells an earlier invocation wrote there
    (so subsets of cells, e.g. at different scales, build up one table)."""
    from ..utils.atomic import atomic_write_text

    merged: dict[str, dict[str, Any]] = {}
    old = out / "table1.json"
    if old.is_file():
        previous = json.loads(old.read_text())
        merged.update({canonical_cell(r["cell"]): {**r, "cell": canonical_cell(r["cell"])}
                       for r in previous.get("rows", []) if canonical_cell(r.get("cell", "")) in CELLS})
        note = note or previous.get("note", "")
    merged.update({r["cell"]: {**r, "steps_scale": r.get("steps_scale", steps_scale)} for r in rows if "rca" in r})
    done = [merged[c] for c in CELLS if c in merged]
    atomic_write_text(old, json.dumps({"note": note, "rows": done}, indent=2))
    path = out / "table1.md"
    atomic_write_text(path, render_markdown(done, note=note))
    return path


def render_markdown(rows: list[dict[str, Any]], *, note: str = "") -> str:
    by_cell = {r["cell"]: r for r in rows}
    cols = list(COLUMNS)
    scales = sorted({r.get("steps_scale", 1.0) for r in rows})
    scale_text = " / ".join(f"{s:g}" for s in scales) or "-"
    lines = [f"Table 1 reproduction, steps scaled by {scale_text} of the paper's (ours / paper).", ""]
    if note:
        lines += [note, ""]
    head = "| model | " + " | ".join(f"RCA {COLUMN_TITLES[c]} | L_s {COLUMN_TITLES[c]}" for c in cols) + " |"
    lines += [head, "|---" * (1 + 2 * len(cols)) + "|"]
    for (g, r), title in ROW_TITLES.items():
        cells = []
        for c in cols:
            name = f"{g}_{r}_{c}"
            row = by_cell.get(name)
            p_rca, p_ls = PAPER[name]
            if row is None:
                cells += [f"- / {p_rca:.4f}", f"- / {p_ls:.4f}"]
            else:
                cells += [f"{row['rca']:.4f} / {p_rca:.4f}", f"{row['shift_loss']:.4f} / {p_ls:.4f}"]
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    lines += ["", "L_s is gamma * mean |alpha_hat - alpha| (gamma = 0.25), the paper's convention. Per cell:", "",
              "| cell | steps (paper) | scale | batch | RCA | L_s | raw mean abs shift error |",
              "|---|---|---|---|---|---|---|"]
    for name in CELLS:
        row = by_cell.get(name)
        if row is not None:
            lines.append(f"| {name} | {row['steps']} ({row['paper_steps']}) | {row.get('steps_scale', 1.0):g} | "
                         f"{row['batch_size']} | {row['rca']:.4f} | "
                         f"{row['shift_loss']:.4f} | {row['shift_l1']:.4f} |")
    return "\n".join(lines) + "\n"
