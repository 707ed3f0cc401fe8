#!/usr/bin/env python3
"""When, in an overload run, the slow admitted streams started: an h2load per-request log over time.

`bench_overload.py` reports one p99 over the whole open-loop run. Whether that p99 is made at the
onset (the seconds before the shedder has settled, the loop's queue built from the 0.5× run's state)
or all along decides what to change, so this prints, per window of the run, the streams answered 200
and 503 and the admitted streams' whole-stream p50 / p99, by the time each stream started.

    BENCH_KEEP_H2LOAD=DIR python3 LoadTests/bench_overload.py --pin --rounds 1 --paths central
    python3 LoadTests/overload_timeline.py DIR/central-2x-round1.log [--window 0.5]

h2load's log: one line a request, `start (µs since the epoch)  status  duration (µs)`.
"""
import argparse


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log")
    parser.add_argument("--window", type=float, default=0.5, help="seconds per row")
    args = parser.parse_args()
    rows = []
    with open(args.log) as f:
        for line in f:
            cols = line.split()
            if len(cols) >= 3:
                rows.append((int(cols[0]), cols[1], int(cols[2]) / 1000))
    if not rows:
        raise SystemExit(f"{args.log}: no requests")
    start = min(r[0] for r in rows)
    windows = {}
    for t, status, ms in rows:
        windows.setdefault(int((t - start) / 1e6 / args.window), []).append((status, ms))
    pct = lambda xs, p: xs[min(len(xs) - 1, int(p / 100 * len(xs)))]  # noqa: E731
    every = sorted(ms for _, status, ms in rows if status == "200")
    print(f"{args.log}: {len(every)} admitted, p50 {pct(every, 50):.2f} ms, p99 {pct(every, 99):.2f} ms")
    print("| from s | 200 | 503 | admitted p50 / p99 ms | share of the run's slowest 1 % |")
    print("|---|---|---|---|---|")
    cut = pct(every, 99)
    slow = sum(1 for ms in every if ms >= cut)
    for w in sorted(windows):
        ok = sorted(ms for status, ms in windows[w] if status == "200")
        refused = sum(1 for status, _ in windows[w] if status == "503")
        mine = sum(1 for ms in ok if ms >= cut)
        p = f"{pct(ok, 50):.2f} / {pct(ok, 99):.2f}" if ok else "–"
        print(f"| {w * args.window:.1f} | {len(ok)} | {refused} | {p} | {100 * mine / max(1, slow):.0f} % |")


if __name__ == "__main__":
    main()
