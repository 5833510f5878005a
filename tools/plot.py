#!/usr/bin/env python3
"""Learning curves from blpo-gpu metrics CSVs.

    python3 tools/plot.py RUN_DIR_OR_CSV [...] [-o curve.png] [--column return_mean_last100]

Each input is a run directory (its metrics.csv is read) or a CSV file. For
every run the chosen column is plotted against global_step: the mean over
agents as a line and the min-max spread over agents as a band. Needs
matplotlib (tools/setup_plot.sh installs it in tools/.venv-plot); the CSV is
read with the standard library so that reading never depends on pandas.
"""
import argparse
import csv
import math
import os
import sys
from collections import defaultdict


def read_runs(path, column):
    csv_path = os.path.join(path, "metrics.csv") if os.path.isdir(path) else path
    if not os.path.exists(csv_path):
        sys.exit(f"plot.py: {csv_path}: no such file")
    by_step = defaultdict(list)
    with open(csv_path, newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or column not in reader.fieldnames:
            have = ", ".join(reader.fieldnames or [])
            sys.exit(f"plot.py: {csv_path}: no column '{column}' (columns: {have})")
        for row in reader:
            try:
                v = float(row[column])
                step = int(row["global_step"])
            except (ValueError, KeyError):
                continue
            if not math.isnan(v):
                by_step[step].append(v)
    steps = sorted(by_step)
    mean = [sum(by_step[s]) / len(by_step[s]) for s in steps]
    lo = [min(by_step[s]) for s in steps]
    hi = [max(by_step[s]) for s in steps]
    return csv_path, steps, mean, lo, hi


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", help="run directories or metrics CSV files")
    ap.add_argument("-o", "--output", default=None,
                    help="PNG to write (default: <first run>/curve.png)")
    ap.add_argument("--column", default="return_mean_last100",
                    help="metrics column to plot (default: return_mean_last100)")
    ap.add_argument("--title", default=None)
    args = ap.parse_args()
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("plot.py: matplotlib is missing: run tools/setup_plot.sh and use "
                 "tools/.venv-plot/bin/python tools/plot.py ...")
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    for path in args.runs:
        csv_path, steps, mean, lo, hi = read_runs(path, args.column)
        label = os.path.basename(os.path.dirname(os.path.abspath(csv_path)))
        line, = ax.plot(steps, mean, label=label)
        ax.fill_between(steps, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_xlabel("env steps per agent")
    ax.set_ylabel(args.column)
    ax.set_title(args.title or "blpo-gpu: mean over agents, band = min..max")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    out = args.output
    if out is None:
        first = args.runs[0]
        out = os.path.join(first if os.path.isdir(first) else os.path.dirname(first) or ".",
                           "curve.png")
    tmp = out + ".tmp.png"
    fig.tight_layout()
    fig.savefig(tmp)
    os.replace(tmp, out)  # never leave a half-written PNG behind
    print(out)


if __name__ == "__main__":
    main()
