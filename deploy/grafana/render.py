#!/usr/bin/env python3
"""Draws deploy/grafana/vigil.json from a Prometheus, without Grafana.

Grafana is not packaged by Debian 12 nor by the registries this project
installs from, so this runs every query of the dashboard against a
Prometheus (its HTTP API, query_range) and draws the panels as Grafana lays
them out: time series as lines, stats as their last value. The page is
written as HTML; with --png, headless chromium takes a picture of it.

    python3 deploy/grafana/render.py --prometheus http://127.0.0.1:9556 \\
        --start 1733500000 --end 1733500300 --out docs/dashboard.html --png docs/dashboard.png

`$stream` is every stream (`.*`), `${datasource}` the Prometheus given.
"""

import argparse
import html
import json
import math
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

COLOURS = ["#73bf69", "#f2cc0c", "#5794f2", "#ff780a", "#f2495c", "#b877d9", "#8ab8ff", "#ffb357", "#96d98d", "#ca95e5"]
COL = 64  # px per grid column (24 columns)
ROW = 34  # px per grid row


def query_range(prom, expr, start, end, step):
    q = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
    with urllib.request.urlopen(f"{prom}/api/v1/query_range?{q}", timeout=30) as r:
        body = json.load(r)
    if body.get("status") != "success":
        raise RuntimeError(f"{expr}: {body}")
    return body["data"]["result"]


def legend(fmt, metric):
    out = fmt or "{{__name__}}"
    for k, v in metric.items():
        out = out.replace("{{" + k + "}}", v)
    return out


def fmt_value(v, unit):
    if v is None or math.isnan(v):
        return "–"
    if unit == "percentunit":
        return f"{v * 100:.1f} %"
    if unit == "s":
        return f"{v * 1000:.0f} ms" if abs(v) < 1 else f"{v:.2f} s"
    if unit in ("fps", "ops"):
        return f"{v:.2f}/s"
    return f"{v:.0f}" if abs(v - round(v)) < 1e-9 else f"{v:.2f}"


def draw_series(series, start, end, w, h, unit):
    """An SVG of the series (list of (name, [(t, v)])) in w x h."""
    pad_l, pad_b = 56, 18
    values = [v for _, pts in series for _, v in pts if not math.isnan(v)]
    lo = min(values + [0.0])
    hi = max(values + [0.0])
    if hi - lo < 1e-12:
        hi = lo + 1
    pw, ph = w - pad_l - 6, h - pad_b - 6
    x = lambda t: pad_l + (t - start) / max(end - start, 1) * pw
    y = lambda v: 6 + ph - (v - lo) / (hi - lo) * ph
    out = [f'<svg width="{w}" height="{h}">']
    for i in range(5):
        v = lo + (hi - lo) * i / 4
        yy = y(v)
        out.append(f'<line x1="{pad_l}" x2="{w - 6}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#2c3235"/>')
        out.append(f'<text x="{pad_l - 4}" y="{yy + 4:.1f}" text-anchor="end">{html.escape(fmt_value(v, unit))}</text>')
    for k in range(0, 5):
        t = start + (end - start) * k / 4
        m = int(t - start)
        anchor = "start" if k == 0 else "end" if k == 4 else "middle"
        out.append(f'<text x="{x(t):.1f}" y="{h - 3}" text-anchor="{anchor}">+{m // 60}:{m % 60:02d}</text>')
    for i, (_, pts) in enumerate(series):
        c = COLOURS[i % len(COLOURS)]
        d = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in pts if not math.isnan(v))
        if d:
            out.append(f'<polyline fill="none" stroke="{c}" stroke-width="1.6" points="{d}"/>')
    out.append("</svg>")
    return "".join(out)


def render(dash, prom, start, end, step):
    panels = []
    height = 0
    for p in dash["panels"]:
        g = p["gridPos"]
        left, top, w, h = g["x"] * COL, g["y"] * ROW, g["w"] * COL - 8, g["h"] * ROW - 8
        height = max(height, top + h + 8)
        title = html.escape(p.get("title", ""))
        if p["type"] == "row":
            panels.append(f'<div class="row" style="left:0;top:{top}px;width:{24 * COL - 8}px">{title}</div>')
            continue
        unit = p.get("fieldConfig", {}).get("defaults", {}).get("unit")
        series = []
        for t in p.get("targets", []):
            expr = t["expr"].replace("$stream", ".*")
            for r in query_range(prom, expr, start, end, step):
                pts = [(float(ts), float(v)) for ts, v in r["values"]]
                series.append((legend(t.get("legendFormat"), r["metric"]), pts))
        if p["type"] == "stat":
            last = [pts[-1][1] for _, pts in series if pts]
            body = f'<div class="stat">{html.escape(fmt_value(sum(last) if last else None, unit))}</div>'
        else:
            if series:
                body = draw_series(series, start, end, w - 16, h - 58, unit)
                keys = "".join(
                    f'<span><i style="background:{COLOURS[i % len(COLOURS)]}"></i>{html.escape(n)}</span>'
                    for i, (n, _) in enumerate(series[:8])
                )
                more = f"<span>+{len(series) - 8} more</span>" if len(series) > 8 else ""
                body += f'<div class="legend">{keys}{more}</div>'
            else:
                body = '<div class="nodata">No data</div>'
        panels.append(
            f'<div class="panel" style="left:{left}px;top:{top}px;width:{w}px;height:{h}px">'
            f'<div class="title">{title}</div>{body}</div>'
        )
    span = int(end - start)
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(dash['title'])}</title>
<style>
body{{margin:0;background:#111217;color:#ccccdc;font:12px Inter,Helvetica,Arial,sans-serif}}
header{{padding:10px 16px;font-size:16px;color:#fff;border-bottom:1px solid #2c3235}}
header small{{color:#8e8e8e;font-size:12px;margin-left:12px}}
.board{{position:relative;margin:8px;height:{height}px}}
.panel{{position:absolute;background:#181b1f;border:1px solid #2c3235;border-radius:3px;padding:6px 8px;box-sizing:border-box;overflow:hidden}}
.title{{font-weight:600;color:#fff;margin-bottom:4px}}
.row{{position:absolute;font-size:14px;font-weight:600;color:#fff;padding:6px 0}}
.stat{{font-size:34px;color:#73bf69;text-align:center;margin-top:12px}}
.nodata{{color:#8e8e8e;text-align:center;margin-top:40px}}
.legend span{{display:inline-block;margin-right:10px;white-space:nowrap}}
.legend i{{display:inline-block;width:10px;height:3px;margin-right:4px;vertical-align:middle}}
svg text{{fill:#8e8e8e;font-size:10px}}
</style></head><body>
<header>{html.escape(dash['title'])} <small>deploy/grafana/vigil.json, every query run against Prometheus ({html.escape(prom)}) over {span // 60} min {span % 60} s; drawn without Grafana by deploy/grafana/render.py</small></header>
<div class="board">{''.join(panels)}</div></body></html>
"""


def main():
    a = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    a.add_argument("--dashboard", default=str(Path(__file__).with_name("vigil.json")))
    a.add_argument("--prometheus", required=True)
    a.add_argument("--start", type=float, required=True)
    a.add_argument("--end", type=float, required=True)
    a.add_argument("--step", type=float, default=2)
    a.add_argument("--out", required=True, help="the HTML page")
    a.add_argument("--png", help="also a picture of it (headless chromium)")
    args = a.parse_args()
    dash = json.loads(Path(args.dashboard).read_text())
    page = render(dash, args.prometheus, args.start, args.end, args.step)
    Path(args.out).write_text(page)
    if args.png:
        rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in dash["panels"])
        size = f"{24 * COL + 16},{rows * ROW + 60}"
        subprocess.run(
            ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             f"--window-size={size}", f"--screenshot={Path(args.png).resolve()}",
             Path(args.out).resolve().as_uri()],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
    print(f"wrote {args.out}" + (f" and {args.png}" if args.png else ""), file=sys.stderr)


if __name__ == "__main__":
    main()
