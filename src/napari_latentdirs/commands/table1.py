"""``latentdirs table1``: one Table 1 cell, or the whole table (optionally scaled down)."""

from __future__ import annotations

import argparse
import json
import queue
import sys
import threading
from pathlib import Path

from .directions import drive_stoppable


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "table1", help="reproduce the paper's Table 1 (one cell or all twelve)",
        description="Train Table 1 cells ({gan,vae} x {resnet,lenet} x {ortho32,unit32,unit100}) and write "
                    "OUT/table1.md with RCA and L_s next to the paper's numbers. Finished cells are reused and "
                    "interrupted ones resume.")
    p.add_argument("--out", required=True, type=Path, help="folder for the cells' runs and table1.md")
    p.add_argument("--cell", help="run one cell, e.g. gan_lenet_unit32 (needs --generator)")
    p.add_argument("--generator", help="generator for --cell (file, run folder or 'analytic')")
    p.add_argument("--gan", help="DCGAN generator for the GAN rows")
    p.add_argument("--vae", help="VAE for the VAE rows")
    p.add_argument("--cells", help="comma-separated subset of cells")
    p.add_argument("--steps-scale", type=float, default=1.0, dest="steps_scale",
                   help="fraction of the paper's steps (e.g. 0.01 on a CPU)")
    p.add_argument("--batch-size", type=int, dest="batch_size", help="override the paper's 128")
    p.add_argument("--eval-batches", type=int, dest="eval_batches", help="override the paper's 100")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", default="auto")
    p.add_argument("--note", default="", help="a line stated under the table (data, generators, machine)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..paper import canonical_cell
    from ..runs.table1 import CELLS, run_table

    overrides = {k: getattr(args, k) for k in ("batch_size", "eval_batches", "seed") if getattr(args, k) is not None}
    overrides["device"] = args.device
    if args.cell:
        if not args.generator:
            print("error: --cell needs --generator", file=sys.stderr)
            return 2
        kind = canonical_cell(args.cell).split("_", 1)[0]
        generators = {kind: args.generator}
        cells = [canonical_cell(args.cell)]
    else:
        generators = {"gan": args.gan, "vae": args.vae}
        if not args.gan and not args.vae:
            print("error: give --gan and/or --vae (or --cell with --generator)", file=sys.stderr)
            return 2
        cells = [canonical_cell(c.strip()) for c in args.cells.split(",")] if args.cells else list(CELLS)
    bad = [c for c in cells if c not in CELLS]
    if bad:
        print(f"error: unknown cells {bad}; cells are {', '.join(CELLS)}", file=sys.stderr)
        return 2
    stop = threading.Event()
    result: dict = {}

    def events():
        # run_table drives the engines in a worker thread; relay their events to the progress display.
        q: queue.Queue = queue.Queue()

        def work() -> None:
            try:
                result["rows"] = run_table(generators, args.out, steps_scale=args.steps_scale, cells=cells,
                                           note=args.note, stop=stop, on_event=lambda c, ev: q.put(ev), **overrides)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
                result["error"] = exc
            finally:
                q.put(None)

        t = threading.Thread(target=work, daemon=True)
        t.start()
        while (ev := q.get()) is not None:
            yield ev
        t.join()

    drive_stoppable(events(), stop)
    if "error" in result:
        raise result["error"]
    rows = result.get("rows", [])
    if any("stopped_at" in r for r in rows):
        print("stopped; run the same command again to resume", file=sys.stderr)
        return 130
    print(json.dumps([{k: r[k] for k in ("cell", "steps", "rca", "shift_loss", "shift_l1")} for r in rows], indent=2))
    print(f"table: {args.out / 'table1.md'}", file=sys.stderr)
    return 0
