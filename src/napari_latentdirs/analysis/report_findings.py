"""The report's findings sections: the headline, generator quality and discovered versus random.

Each figure stands beside its bound: quality beside the real-versus-real ceiling, RCA beside
chance, every discovered factor beside the matched random sets' figure for it.
"""

from __future__ import annotations

from typing import Any

from .htmlsafe import Html, escape, h, join


def as_float(x: Any) -> float | None:
    """A number from the summary, or None: a field of the wrong type is shown as text, never trusted."""
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def _num(x: Any, nd: int = 2, sign: str = "") -> Html:
    if x is None:
        return Html('<span class="muted">&ndash;</span>')
    v = as_float(x)
    return escape(x) if v is None else h("{}", f"{v:{sign}.{nd}f}")


def _ratio(gen: Any, ceil: Any) -> float | None:
    g, c = as_float(gen), as_float(ceil)
    return g / c if g is not None and c is not None and c > 0 else None


def _quality_class(r: float | None) -> str:
    if r is None:
        return ""
    return "good" if r >= 0.5 else ("warn" if r >= 0.2 else "bad")


def quality_table(quality: dict[str, Any]) -> Html:
    """Precision, recall and diversity of each generator, each over the real-vs-real ceiling."""
    if not quality:
        return Html('<p class="muted">Generator quality was not measured in this run.</p>')
    rows = []
    for kind, q in quality.items():
        if not isinstance(q, dict) or "spaces" not in q:
            err = q.get("error", "not measured") if isinstance(q, dict) else "not measured"
            rows.append(h('<tr><td class="l">{}</td><td class="l" colspan="8">{}</td></tr>', str(kind).upper(), err))
            continue
        for space, s in q["spaces"].items():
            g, c = s.get("generated", {}), s.get("ceiling", {})
            cells = []
            for key in ("precision", "recall"):
                r = _ratio(g.get(key), c.get(key))
                cells.append(h('<td>{} / {}</td><td class="{}">{}</td>', _num(g.get(key)), _num(c.get(key)),
                               _quality_class(r), _num(r)))
            fid = (h("{} ({})", _num(s.get("fid"), 1), _num(s.get("fid_ceiling"), 1))
                   if s.get("fid") is not None else Html('<span class="muted">&ndash;</span>'))
            rows.append(h('<tr><td class="l">{}</td><td class="l">{}</td>{}<td>{} / {}</td><td>{}</td></tr>',
                          str(kind).upper(), space, join(cells), _num(g.get("diversity")), _num(c.get("diversity")), fid))
    first = next(iter(quality.values()))
    ref = first.get("reference", "") if isinstance(first, dict) else ""
    n = first.get("n", "") if isinstance(first, dict) else ""
    return h(
        "<p>k-nearest-neighbour precision (are samples inside the real data's manifold?) and recall (does the generator "
        "cover the real data's variety?), Kynkäänniemi et al. 2019, k = 3, on {} samples against {}. Each figure is shown "
        "over the same measure between two independent real samples (the ceiling) and as a ratio to it. Feature spaces: "
        "<i>probes</i> = the phantom's anatomical measurements, standardised; <i>inception</i> = the FID network's "
        "pool features. Diversity = mean pairwise feature distance. FID beside its real-vs-real value.</p>"
        '<table><tr><th class="l">generator</th><th class="l">space</th><th>precision / ceiling</th><th>ratio</th>'
        "<th>recall / ceiling</th><th>ratio</th><th>diversity / real</th><th>FID (real)</th></tr>{}</table>",
        escape(n), escape(ref), join(rows),
    )


def comparison_table(kind: str, c: dict[str, Any]) -> Html:
    if "rows" not in c:
        why = ("no direction set learned (every RCA below the bar)" if c.get("not_learned") and not c.get("discovered")
               else "not computed")
        return h('<p class="warn">{}: discovered versus random {}.</p>', str(kind).upper(), why)
    rows = []
    for r in c["rows"]:
        ci = r.get("ci") if isinstance(r.get("ci"), list | tuple) and len(r.get("ci")) == 2 else (None, None)
        lo, hi = as_float(ci[0]), as_float(ci[1])
        cls = "good" if lo is not None and lo > 0 else ("bad" if hi is not None and hi < 0 else "")
        rows.append(h('<tr><td class="l">{}</td><td>{}</td><td>{}</td><td class="{}">{}</td>'
                      '<td class="{} small">[{}, {}]</td><td>{}/{}</td><td>{}/{}</td></tr>',
                      r.get("factor"), _num(r.get("discovered")), _num(r.get("random")), cls,
                      _num(r.get("difference"), sign="+"), cls, _num(ci[0], sign="+"), _num(ci[1], sign="+"),
                      r.get("found_discovered"), c.get("n_discovered"), r.get("found_random"), c.get("n_random")))
    return h(
        '<h3>{}: {} discovered set(s) against {} random set(s)</h3><p class="small">discovered: {}; random: {}{}</p>'
        '<table><tr><th class="l">factor</th><th>discovered</th><th>random</th><th>difference</th><th>95% CI</th>'
        "<th>sets labelling it (discovered)</th><th>(random)</th></tr>{}</table>",
        str(kind).upper(), c.get("n_discovered"), c.get("n_random"), _names(c.get("discovered")), _names(c.get("random")),
        h("; not learned (left out): {}", _names(c.get("not_learned"))) if c.get("not_learned") else Html(""),
        join(rows),
    )


def _names(x: Any) -> str:
    return ", ".join(map(str, x)) if isinstance(x, list | tuple) else str(x)


def headline(summary: dict[str, Any]) -> Html:
    """A few sentences a reader can check against the tables below."""
    items = []
    for kind, q in summary.get("quality", {}).items():
        if isinstance(q, dict) and "spaces" in q and "probes" in q["spaces"]:
            s = q["spaces"]["probes"]
            rp = _ratio(s["generated"].get("precision"), s["ceiling"].get("precision"))
            rr = _ratio(s["generated"].get("recall"), s["ceiling"].get("recall"))
            items.append(h("<li>{} quality (anatomical measurements): precision {} and recall {} of the real-vs-real "
                           "ceiling.</li>", str(kind).upper(), _num(rp), _num(rr)))
    by_gen: dict[str, list[dict[str, Any]]] = {}
    for r in summary.get("table1", []):
        by_gen.setdefault(r.get("generator", "?"), []).append(r)
    for kind, rows in by_gen.items():
        rcas = [v for v in (as_float(r.get("rca")) for r in rows) if v is not None]
        learned = sum(bool(r.get("learned", True)) for r in rows)
        chance = rows[0].get("chance")
        if rcas:
            items.append(h("<li>{}: {} of {} direction set(s) learned; RCA {}&ndash;{} (chance {}).</li>",
                           str(kind).upper(), learned, len(rows), _num(min(rcas), 3), _num(max(rcas), 3), _num(chance, 3)))
    for kind, c in summary.get("comparison", {}).items():
        if "rows" in c:
            beats = c.get("beats_random", [])
            below = c.get("below_random", [])
            items.append(h("<li>{}: discovered directions are more selective than matched random ones for {} of {} "
                           "factors{}{}.</li>", str(kind).upper(), len(beats), len(c["rows"]),
                           h(" ({})", _names(beats)) if beats else Html(""),
                           h("; less selective for {}", _names(below)) if below else Html("")))
    if not items:
        return Html("")
    return h("<ul>{}</ul>", join(items))
