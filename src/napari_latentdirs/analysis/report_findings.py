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


def _ladder_cell(s: dict[str, Any]) -> Html:
    """The calibration ladder of one space: real, then each degraded real sample (blur 1 px, 2 px)."""
    rungs = [r for r in s.get("ladder", []) if isinstance(r, dict)]
    if not rungs:
        return Html('<span class="muted">&ndash;</span>')
    c = s.get("ceiling", {})
    if s.get("fid") is not None:
        parts = [h("real {}", _num(s.get("fid_ceiling"), 1))]
        parts += [h("{} {}", str(r.get("name", "")), _num(r.get("fid"), 1)) for r in rungs]
        return h("FID: {}", Html(", ".join(parts)))
    parts = [h("real {} / {}", _num(c.get("precision")), _num(c.get("recall")))]
    parts += [h("{} {} / {}", str(r.get("name", "")), _num(r.get("figures", {}).get("precision")),
                _num(r.get("figures", {}).get("recall"))) for r in rungs]
    return Html(", ".join(parts))


def quality_table(quality: dict[str, Any]) -> Html:
    """Precision, recall and diversity of each generator, each over the real-vs-real ceiling, with the
    calibration ladder (real data blurred on purpose) and the checkerboard index beside them."""
    if not quality:
        return Html('<p class="muted">Generator quality was not measured in this run.</p>')
    rows = []
    for kind, q in quality.items():
        if not isinstance(q, dict) or "spaces" not in q:
            err = q.get("error", "not measured") if isinstance(q, dict) else "not measured"
            rows.append(h('<tr><td class="l">{}</td><td class="l" colspan="9">{}</td></tr>', str(kind).upper(), err))
            continue
        for space, s in q["spaces"].items():
            g, c = s.get("generated", {}), s.get("ceiling", {})
            cells = []
            for key in ("precision", "recall"):
                r = _ratio(g.get(key), c.get(key))
                cls = _quality_class(r) if space != "inception" else "muted"
                cells.append(h('<td>{} / {}</td><td class="{}">{}</td>', _num(g.get(key)), _num(c.get(key)), cls, _num(r)))
            fid = (h("{} ({})", _num(s.get("fid"), 1), _num(s.get("fid_ceiling"), 1))
                   if s.get("fid") is not None else Html('<span class="muted">&ndash;</span>'))
            rows.append(h('<tr><td class="l">{}</td><td class="l">{}</td>{}<td>{} / {}</td><td>{}</td><td class="l">{}</td></tr>',
                          str(kind).upper(), space, join(cells), _num(g.get("diversity")), _num(c.get("diversity")), fid,
                          _ladder_cell(s)))
    checks = []
    for kind, q in quality.items():
        cb = q.get("checkerboard") if isinstance(q, dict) else None
        if isinstance(cb, dict):
            v = as_float(cb.get("generated"))
            checks.append(h('<li>{}: checkerboard index <span class="{}">{}</span> (a second real sample: {})</li>',
                            str(kind).upper(), "good" if v is not None and v <= 1.5 else "bad", _num(v, 2),
                            _num(cb.get("real"), 2)))
    first = next(iter(quality.values()))
    ref = first.get("reference", "") if isinstance(first, dict) else ""
    n = first.get("n", "") if isinstance(first, dict) else ""
    check_html = (h("<p>Checkerboard index: the share of the slices' spectral power at the grid frequencies (&pi;, &pi;), "
                    "(&pi;, 0), (0, &pi;), the signature of stride-2 transposed convolutions, over that of real slices "
                    "(about 1 for real data, less for blurred data; goal at most 1.5).</p><ul>{}</ul>", join(checks))
                  if checks else Html(""))
    return h(
        "<p>k-nearest-neighbour precision (are samples inside the real data's manifold?) and recall (does the generator "
        "cover the real data's variety?), Kynkäänniemi et al. 2019, k = 3, on {} samples against {}. Each figure is shown "
        "over the same measure between two independent real samples (the ceiling) and as a ratio to it. Feature spaces: "
        "<i>probes</i> = the phantom's anatomical measurements, standardised; <i>pixels</i> = the slices area-averaged "
        "to 32&times;32; <i>inception</i> = the FID network's pool features. Diversity = mean pairwise feature distance. "
        "<b>Scale</b>: the second real sample blurred on purpose (1 px, 2 px) and scored the same way, in this run. "
        "In the Inception space precision and recall saturate on phantom data (a 1-px blur of real slices already "
        "scores near 0), so they say nothing about anatomy there; read FID against its scale.</p>"
        '<table><tr><th class="l">generator</th><th class="l">space</th><th>precision / ceiling</th><th>ratio</th>'
        '<th>recall / ceiling</th><th>ratio</th><th>diversity / real</th><th>FID (real)</th>'
        '<th class="l">scale (precision / recall, or FID)</th></tr>{}</table>{}',
        escape(n), escape(ref), join(rows), check_html,
    )


def _verdict(r: dict[str, Any], alpha: Any) -> str:
    """"good"/"bad" when the factor beats / trails random after Holm's correction (older summaries: the CI)."""
    diff, p_holm, a = as_float(r.get("difference")), as_float(r.get("p_holm")), as_float(alpha)
    if p_holm is not None and diff is not None:
        if p_holm < (a if a is not None else 0.05):
            return "good" if diff > 0 else ("bad" if diff < 0 else "")
        return ""
    ci = r.get("ci") if isinstance(r.get("ci"), list | tuple) and len(r.get("ci")) == 2 else (None, None)
    lo, hi = as_float(ci[0]), as_float(ci[1])
    return "good" if lo is not None and lo > 0 else ("bad" if hi is not None and hi < 0 else "")


def _cmp_cells(r: dict[str, Any], alpha: Any) -> Html:
    ci = r.get("ci") if isinstance(r.get("ci"), list | tuple) and len(r.get("ci")) == 2 else (None, None)
    cls = _verdict(r, alpha)
    return h('<td>{}</td><td>{}</td><td class="{}">{}</td><td class="small">[{}, {}]</td><td class="{}">{}</td>',
             _num(r.get("discovered")), _num(r.get("random")), cls, _num(r.get("difference"), sign="+"),
             _num(ci[0], sign="+"), _num(ci[1], sign="+"), cls, _num(r.get("p_holm"), 3))


def comparison_table(key: str, c: dict[str, Any]) -> Html:
    """One cell's discovered sets against the random sets of its generator and K: as measured and, when the
    summary has it, at equal image change."""
    title = (h("{} {} {} (K = {})", str(c.get("generator", "")).upper(), c.get("reconstructor", ""), c.get("cell", ""),
               c.get("K")) if c.get("cell") else h("{}", str(key).upper()))
    if "rows" not in c:
        why = ("no direction set learned (every RCA below the bar)" if c.get("not_learned") and not c.get("discovered")
               else "not computed")
        return h('<p class="warn">{}: discovered versus random {}.</p>', title, why)
    eq = c.get("equal_change") if isinstance(c.get("equal_change"), dict) else {}
    eq_rows = {r.get("factor"): r for r in eq.get("rows", []) if isinstance(r, dict)}
    rows = []
    for r in c["rows"]:
        e = eq_rows.get(r.get("factor"))
        eq_cells = _cmp_cells(e, eq.get("alpha")) if e is not None else (
            Html('<td class="muted" colspan="5">&ndash;</td>') if eq_rows else Html(""))
        rows.append(h('<tr><td class="l">{}</td>{}{}<td>{}/{}</td><td>{}/{}</td></tr>', r.get("factor"),
                      _cmp_cells(r, c.get("alpha")), eq_cells, r.get("found_discovered"), c.get("n_discovered"),
                      r.get("found_random"), c.get("n_random")))
    sub = Html("<th>discovered</th><th>random</th><th>difference</th><th>95% CI</th><th>Holm p</th>")
    head1 = h('<th class="l" rowspan="2">factor</th><th colspan="5">as measured</th>{}'
              '<th rowspan="2">sets labelling it (discovered)</th><th rowspan="2">(random)</th>',
              Html('<th colspan="5">at equal image change</th>') if eq_rows else Html(""))
    scales = eq.get("scales") if isinstance(eq.get("scales"), dict) else {}
    eq_note = (h(" At equal image change the discovered shifts were multiplied by {} (mean image change {} &rarr; the "
                 "random sets' {}).", ", ".join(str(_num(v.get("scale"))) for v in scales.values() if isinstance(v, dict)),
                 _num(next((v.get("image_change") for v in scales.values() if isinstance(v, dict)), None), 3),
                 _num(eq.get("target_image_change"), 3)) if scales else Html(""))
    beats = c.get("beats_random", [])
    return h(
        '<h3>{}: {} discovered set(s) against {} random set(s)</h3><p class="small">discovered: {}; random: {}{}. '
        "Beats random on {} of {} factors{}. Resampling: {}.{}</p>"
        "<table><tr>{}</tr><tr>{}{}</tr>{}</table>",
        title, c.get("n_discovered"), c.get("n_random"), _names(c.get("discovered")), _names(c.get("random")),
        h("; not learned (left out): {}", _names(c.get("not_learned"))) if c.get("not_learned") else Html(""),
        len(beats) if isinstance(beats, list) else beats, len(c["rows"]), h(" ({})", _names(beats)) if beats else Html(""),
        c.get("resampling", "latents and sets, independently per group (older summary)"), eq_note,
        head1, sub, sub if eq_rows else Html(""), join(rows),
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
    for key, c in summary.get("comparison", {}).items():
        if "rows" in c:
            beats = c.get("beats_random", [])
            below = c.get("below_random", [])
            name = (h("{} {} {}", str(c.get("generator", "")).upper(), c.get("reconstructor", ""), c.get("cell", ""))
                    if c.get("cell") else str(key).upper())
            eq = c.get("equal_change") if isinstance(c.get("equal_change"), dict) else {}
            eq_beats = eq.get("beats_random") if isinstance(eq.get("beats_random"), list) else None
            items.append(h("<li>{}: discovered directions are more selective than matched random ones for {} of {} "
                           "factors (Holm-corrected){}{}{}.</li>", name, len(beats), len(c["rows"]),
                           h(" ({})", _names(beats)) if beats else Html(""),
                           h("; less selective for {}", _names(below)) if below else Html(""),
                           h("; at equal image change for {} ({})", len(eq_beats), _names(eq_beats) or "none")
                           if eq_beats is not None else Html("")))
    if not items:
        return Html("")
    return h("<ul>{}</ul>", join(items))
