"""``latentdirs report RUN``: (re)write the HTML report of a run folder."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="write RUN/report/index.html (analysing the run first if needed)",
        description="Renders the report from RUN/analysis/summary.json. Without a summary, the analysis "
        "(labels, scores, figures) runs first on the run's generators and direction sets. "
        "Reviews saved beside the direction sets are picked up on every call.",
    )
    p.add_argument("run", help="run folder written by `latentdirs run`")
    p.add_argument("--reanalyse", action="store_true", help="recompute the analysis (labels are reused if present)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from ..analysis.report import render
    from ..runs.pipeline import analyse

    run = Path(args.run)
    if not (run / "manifest.json").exists() and not (run / "analysis" / "summary.json").exists():
        raise SystemExit(f"{run} is not a run folder (no manifest.json): create it with `latentdirs run --out {run}`")
    from ..analysis.report import ReportInputError
    from ..utils.folderlock import hold_folder
    from ..utils.paths import OutsideRunError

    try:
        with hold_folder(run):  # one writer per run folder (issue 22)
            if args.reanalyse or not (run / "analysis" / "summary.json").exists():
                analyse(run)
            path = render(run)
    except (OutsideRunError, ReportInputError) as exc:
        raise SystemExit(f"error: {exc}") from None
    print(f"report: {path.resolve()}")
    return 0
