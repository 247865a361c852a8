#!/usr/bin/env python3
"""Draws benches/vhost_vs_ovs.sh's curve (flows,fvs_mpps,ovs_mpps CSV) as an SVG line
chart, Mpps against active flows on a log scale; no plotting library needed."""
import csv
import math
import sys

src, dst = sys.argv[1], sys.argv[2]
rows = []
with open(src) as f:
    for r in csv.DictReader(f):
        val = lambda k: float(r[k]) if r.get(k) else None
        rows.append((int(r["flows"]), val("fvs_mpps"), val("ovs_mpps")))
if not rows:
    sys.exit("plot_curve: no rows in " + src)
W, H, L, R, T, B = 640, 400, 60, 130, 30, 50
xs = [math.log10(max(n, 1)) for n, _, _ in rows]
x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
ymax = max([v for _, f, o in rows for v in (f, o) if v is not None] + [1.0])
ymax = math.ceil(ymax * 1.1)
px = lambda x: L + (x - x0) / (x1 - x0) * (W - L - R)
py = lambda y: H - B - y / ymax * (H - T - B)
out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
       f'<rect width="{W}" height="{H}" fill="white"/>',
       f'<text x="{W / 2}" y="18" text-anchor="middle" font-size="14">Mpps against active flows (64B, one PMD core)</text>']
for i in range(0, 6):
    y = ymax * i / 5
    out.append(f'<line x1="{L}" y1="{py(y):.1f}" x2="{W - R}" y2="{py(y):.1f}" stroke="#ddd"/>')
    out.append(f'<text x="{L - 6}" y="{py(y) + 4:.1f}" text-anchor="end">{y:g}</text>')
for n, _, _ in rows:
    x = px(math.log10(max(n, 1)))
    out.append(f'<line x1="{x:.1f}" y1="{H - B}" x2="{x:.1f}" y2="{H - B + 4}" stroke="black"/>')
    out.append(f'<text x="{x:.1f}" y="{H - B + 18}" text-anchor="middle">{n:,}</text>')
out.append(f'<line x1="{L}" y1="{H - B}" x2="{W - R}" y2="{H - B}" stroke="black"/>')
out.append(f'<line x1="{L}" y1="{T}" x2="{L}" y2="{H - B}" stroke="black"/>')
out.append(f'<text x="{(L + W - R) / 2}" y="{H - 10}" text-anchor="middle">active flows</text>')
out.append(f'<text x="16" y="{(T + H - B) / 2}" text-anchor="middle" transform="rotate(-90 16 {(T + H - B) / 2})">Mpps</text>')
for k, (name, color) in enumerate([("fvs", "#c0392b"), ("OVS-DPDK", "#2c3e50")]):
    pts = [(px(math.log10(max(n, 1))), py(v)) for n, *vals in rows for v in [vals[k]] if v is not None]
    if pts:
        out.append('<polyline fill="none" stroke-width="2" stroke="%s" points="%s"/>'
                   % (color, " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)))
        out += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}"/>' for x, y in pts]
    ly = T + 10 + 20 * k
    out.append(f'<line x1="{W - R + 15}" y1="{ly}" x2="{W - R + 40}" y2="{ly}" stroke="{color}" stroke-width="2"/>')
    out.append(f'<text x="{W - R + 46}" y="{ly + 4}">{name}</text>')
out.append("</svg>")
with open(dst, "w") as f:
    f.write("\n".join(out) + "\n")
