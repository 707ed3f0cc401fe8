#!/usr/bin/env python3
"""Reads fleet-sim compare tables (markdown, from LoadTests/sim_grid.sh) and prints, for every
table, predictive against the best baseline per measure: p99 TTFT (lowest) and objective met
(highest), the ratio and the difference, and central token shares. Usage: sim_targets.py FILE..."""
import re
import sys

BASELINES = {
    "random", "round-robin", "least-outstanding", "p2c-least-outstanding", "p2c-peak-ewma",
    "least-outstanding-fastest", "weighted-least-request", "shortest-expected-prefill",
}


def median(cell):
    m = re.match(r"\s*([0-9.]+|inf)", cell)
    return float(m.group(1)) if m else float("nan")


print("| table | predictive p99 ms | best baseline p99 (policy) | ratio | predictive met | best baseline met (policy) | points | central tokens: predictive / that baseline |")
print("|---|---|---|---|---|---|---|---|")
for path in sys.argv[1:]:
    title = None
    header = None
    rows = {}

    def flush():
        if not rows or "predictive" not in rows or header is None:
            return
        p99 = header.index("TTFT p99 ms")
        met = header.index("objective met")
        tok = header.index("central tokens")
        base = {k: v for k, v in rows.items() if k in BASELINES}
        if not base:
            return
        bp99 = min(base, key=lambda k: median(base[k][p99]))
        bmet = max(base, key=lambda k: median(base[k][met]))
        pr = rows["predictive"]
        print(
            f"| {title} | {median(pr[p99]):.0f} | {median(base[bp99][p99]):.0f} ({bp99}) | "
            f"{median(base[bp99][p99]) / median(pr[p99]):.2f}× | {median(pr[met]):.1f} % | "
            f"{median(base[bmet][met]):.1f} % ({bmet}) | {median(pr[met]) - median(base[bmet][met]):+.1f} | "
            f"{median(pr[tok]):.1f} % / {median(base[bmet][tok]):.1f} % |"
        )

    for line in open(path):
        if line.startswith("fleet-sim compare:"):
            flush()
            rows, header = {}, None
            m = re.search(r"set (\S+), (\d+) cars, load ([0-9.]+)×, churn ([0-9.]+) %/10 min, notice (\w+), central ([0-9.]+) %.*?, (heterogeneous|homogeneous control)", line)
            title = f"{m.group(1)}, {m.group(2)} cars, {m.group(3)}×, churn {m.group(4)} %, notice {m.group(5)}, central {m.group(6)} %" + (", control" if "homogeneous" in m.group(7) else "")
        elif line.startswith("| policy"):
            header = [c.strip() for c in line.strip().strip("|").split("|")]
        elif line.startswith("| ") and header and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            rows[cells[0]] = cells
    flush()
