#!/usr/bin/env python3
"""Loss curves of a run as an SVG, read from its TensorBoard event files with TensorBoard's own
reader (EventAccumulator), as the dashboard reads them.

  plot_tensorboard.py OUT_DIR --out FILE.svg [--tags train/loss,val/loss] [--title TEXT]"""
import argparse
import os

from tensorboard.backend.event_processing import event_accumulator

W, H, L, R, T, B = 640, 360, 60, 20, 30, 40
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out_dir")
    ap.add_argument("--out", required=True)
    ap.add_argument("--tags", default="train/loss,val/loss")
    ap.add_argument("--title", default="")
    args = ap.parse_args()
    acc = event_accumulator.EventAccumulator(os.path.join(args.out_dir, "tensorboard"),
                                             size_guidance={event_accumulator.SCALARS: 0})
    acc.Reload()
    series = {tag: [(s.step, s.value) for s in acc.Scalars(tag)] for tag in args.tags.split(",")}
    steps = [s for pts in series.values() for s, _ in pts]
    values = [v for pts in series.values() for _, v in pts]
    x0, x1, y0, y1 = 0, max(steps), min(values), max(values)
    pad = (y1 - y0) * 0.05 or 1
    y0, y1 = y0 - pad, y1 + pad
    X = lambda s: L + (s - x0) / (x1 - x0) * (W - L - R)
    Y = lambda v: T + (y1 - v) / (y1 - y0) * (H - T - B)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{W / 2}" y="18" text-anchor="middle">{args.title}</text>',
           f'<line x1="{L}" y1="{H - B}" x2="{W - R}" y2="{H - B}" stroke="black"/>',
           f'<line x1="{L}" y1="{T}" x2="{L}" y2="{H - B}" stroke="black"/>',
           f'<text x="{(L + W - R) / 2}" y="{H - 8}" text-anchor="middle">step</text>']
    for i in range(6):
        s, v = x0 + (x1 - x0) * i / 5, y0 + (y1 - y0) * i / 5
        out.append(f'<text x="{X(s):.1f}" y="{H - B + 16}" text-anchor="middle">{s:.0f}</text>')
        out.append(f'<text x="{L - 6}" y="{Y(v) + 4:.1f}" text-anchor="end">{v:.2f}</text>')
        out.append(f'<line x1="{L}" y1="{Y(v):.1f}" x2="{W - R}" y2="{Y(v):.1f}" stroke="#ddd"/>')
    for i, (tag, pts) in enumerate(series.items()):
        c = COLORS[i % len(COLORS)]
        path = " ".join(f"{X(s):.1f},{Y(v):.1f}" for s, v in pts)
        out.append(f'<polyline fill="none" stroke="{c}" stroke-width="1.5" points="{path}"/>')
        for s, v in pts if len(pts) < 40 else []:
            out.append(f'<circle cx="{X(s):.1f}" cy="{Y(v):.1f}" r="3" fill="{c}"/>')
        out.append(f'<text x="{W - R - 110}" y="{T + 16 + 16 * i}" fill="{c}">{tag}</text>')
    out.append("</svg>")
    with open(args.out, "w") as f:
        f.write("\n".join(out) + "\n")
    print(f"wrote {args.out}: {', '.join(f'{t} ({len(p)} points)' for t, p in series.items())}")


if __name__ == "__main__":
    main()
