#!/usr/bin/env bash
# The simulator's full grid (issue #5): every policy on the same seeds, for each churn rate and
# with/without departure notice, at each offered load, plus each policy's goodput by bisection.
# Usage: LoadTests/sim_grid.sh [CARS] [LOADS] [SEEDS]     (defaults: 1000 "0.5 0.8 1.1 1.4 1.7" 1,2,3,4,5)
# Release build; virtual time, no sockets. Markdown tables on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
cars=${1:-1000}
loads=${2:-"0.5 0.8 1.1 1.4 1.7"}
seeds=${3:-1,2,3,4,5}
swift build -c release --product fleet-sim >/dev/null
sim=.build/release/fleet-sim
for churn in 0.005 0.02 0.05; do
    for notice in true false; do
        for load in $loads; do
            echo
            echo "### cars $cars, churn $churn / 10 min, notice $notice, load $load×"
            goodput=""
            if [ "$load" = "0.8" ]; then goodput="--goodput"; fi
            $sim compare --cars "$cars" --load "$load" --churn "$churn" --notice "$notice" --seeds "$seeds" $goodput | sed -n '3,$p'
        done
    done
done
echo
echo "### control: homogeneous fleet (HW4-like, home broadband), cars $cars, churn 0.02, notice true, load 0.8×"
$sim compare --cars "$cars" --homogeneous --seeds "$seeds" --goodput | sed -n '3,$p'
