"""The README's main-job figures, rendered from the summary the main job writes, so they cannot drift.

    .venv/bin/python scripts/readme_figures.py runs/demo            # copy the summary, rewrite the README block
    .venv/bin/python scripts/readme_figures.py --check               # the README block matches the copy

The run's ``analysis/summary.json`` is copied to ``docs/main_job_summary.json`` (with the machine it ran
on), and the block between the two markers in README.md is replaced by :func:`render` of it.
``tests/test_readme_figures.py`` checks the README against the committed copy.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUMMARY = ROOT / "docs" / "main_job_summary.json"
START, END = "<!-- main-job-figures:start -->", "<!-- main-job-figures:end -->"


def _minutes(seconds: float) -> str:
    m, s = divmod(round(seconds), 60)
    return f"{m} min {s} s"


def _range(values: list[float], nd: int = 3) -> str:
    if not values:
        return "-"
    lo, hi = min(values), max(values)
    return f"{lo:.{nd}f}" if f"{lo:.{nd}f}" == f"{hi:.{nd}f}" else f"{lo:.{nd}f}-{hi:.{nd}f}"


def render(summary: dict) -> str:
    """Markdown for the README from a main-job summary (``runs/analyse.py``)."""
    t = summary.get("timings", {})
    total = summary.get("wall_seconds") or sum(v for v in t.values() if isinstance(v, (int, float)))
    parts = ", ".join(f"{k} {round(v)} s" for k, v in t.items() if isinstance(v, (int, float)) and v >= 30)
    head = (f"Measured ({summary.get('created', '?')[:10]}, {summary.get('machine', 'this machine')}, "
            f"`bash scripts/main.sh`): **{_minutes(total)}** wall ({parts}).")
    lines = [head]
    sets = summary.get("direction_sets", [])
    for kind in ("vae", "gan"):
        disc = [s for s in sets if s.get("generator") == kind and s.get("kind") == "discovered"]
        rand = [s for s in sets if s.get("generator") == kind and s.get("method") == "random"]
        if not disc:
            continue
        rcas = [s["rca"] for s in disc if isinstance(s.get("rca"), (int, float))]
        er = [s["collapse"]["effective_rank"] for s in disc if "collapse" in s]
        er_r = [s["collapse"]["effective_rank"] for s in rand if "collapse" in s]
        groups = [s["collapse"].get("largest_group", 1) for s in disc if "collapse" in s]
        found = [s.get("n_found", 0) for s in disc]
        lines.append(f"- {kind.upper()}: {len(disc)} discovered sets ({disc[0].get('config', '?')}), RCA "
                     f"{_range(rcas)} (chance {disc[0].get('chance', 0):.3f}); effective rank {_range(er, 1)} of "
                     f"{disc[0].get('K', 32)} (random sets {_range(er_r, 1)}), largest duplicate group "
                     f"{max(groups, default=1)}; factors labelled at selectivity >= 0.6: {_range(found, 0)} per set.")
    for key, entry in summary.get("comparison", {}).items():
        if not isinstance(entry, dict) or "rows" not in entry:
            continue
        beats, below = entry.get("beats_random", []), entry.get("below_random", [])
        text = (f"- {key} against {entry.get('n_random', '?')} matched random sets (Holm-corrected): better on "
                f"{len(beats)} of {len(entry['rows'])} factors ({', '.join(beats) or 'none'})")
        text += f", worse on {', '.join(below)}" if below else ", worse on none"
        eq = entry.get("equal_change")
        if isinstance(eq, dict) and "rows" in eq:
            text += f"; at equal image change better on {len(eq.get('beats_random', []))}"
        lines.append(text + ".")
    for kind, q in summary.get("quality", {}).items():
        if not isinstance(q, dict) or "spaces" not in q:
            continue
        bits = [f"{name} precision {s['ratio']['precision']:.2f}, recall {s['ratio']['recall']:.2f}"
                for name, s in q["spaces"].items() if name != "inception"]
        cb = q.get("checkerboard", {})
        cbt = f"; checkerboard index {cb['generated']:.2f} (real {cb['real']:.2f})" if cb else ""
        lines.append(f"- {kind.upper()} quality (ratio to the real-vs-real ceiling, n = {q.get('n')}): "
                     + "; ".join(bits) + cbt + ".")
    return "\n".join(lines)


def block(summary: dict) -> str:
    return f"{START}\n{render(summary)}\n{END}"


def replace_block(readme: str, summary: dict) -> str:
    i, j = readme.index(START), readme.index(END) + len(END)
    return readme[:i] + block(summary) + readme[j:]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", nargs="?", type=Path, help="a main-job run folder (omit with --check)")
    ap.add_argument("--machine", default=None, help="words for the machine (default: from platform)")
    ap.add_argument("--wall", type=float, default=None, help="the job's wall seconds as it printed them")
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args(argv)
    readme = ROOT / "README.md"
    if args.check:
        summary = json.loads(SUMMARY.read_text())
        ok = replace_block(readme.read_text(), summary) == readme.read_text()
        print("README figures match docs/main_job_summary.json" if ok else "README figures are stale")
        return 0 if ok else 1
    summary = json.loads((args.run / "analysis" / "summary.json").read_text())
    summary["machine"] = args.machine or f"{platform.machine()} with {__import__('os').cpu_count()} cores"
    if args.wall is not None:
        summary["wall_seconds"] = args.wall
    SUMMARY.write_text(json.dumps(summary, indent=1))
    readme.write_text(replace_block(readme.read_text(), summary))
    print(render(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
