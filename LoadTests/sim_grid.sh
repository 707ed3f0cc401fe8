#!/usr/bin/env bash
# The simulator's tables (issue #13): every policy and ablation on the same seeds, for a
# parameter set, cars only and with central, across a load sweep, and the churn/failure grid.
# Usage: LoadTests/sim_grid.sh [SET] [CARS] [SEEDS]   (defaults: tuning 1000 1,2,3,4,5)
# Release build; virtual time, no sockets; markdown tables on stdout. Run with `nice -n 10`.
set -euo pipefail
cd "$(dirname "$0")/.."
set_=${1:-tuning}
cars=${2:-1000}
seeds=${3:-1,2,3,4,5}
swift build -c release --product fleet-sim >/dev/null
sim=.build/release/fleet-sim
all="random,round-robin,least-outstanding,p2c-least-outstanding,p2c-peak-ewma,least-outstanding-fastest,weighted-least-request,shortest-expected-prefill,predictive,predictive+nolearn,predictive+risk=0,predictive+probes=2,predictive+probes=4,predictive+fitMargin=0,predictive+centralByPrediction=1"
for central in 0.05 0; do
    echo
    echo "## set $set_, central $central, every policy and ablation"
    $sim compare --set "$set_" --cars "$cars" --central "$central" --load 0.5,0.8 --seeds "$seeds" --policies "$all"
done
for central in 0.05 0; do
    echo
    echo "## set $set_, central $central, load sweep"
    $sim compare --set "$set_" --cars "$cars" --central "$central" --load 0.3,0.5,0.8,1.0,1.2 --seeds "$seeds" \
        --policies least-outstanding-fastest,weighted-least-request,shortest-expected-prefill,predictive
done
for churn in 0.05 0.5; do
    for notice in true false; do
        echo
        echo "## set $set_, churn $churn / 10 min, notice $notice"
        $sim compare --set "$set_" --cars "$cars" --churn "$churn" --notice "$notice" --load 0.8 --seeds "$seeds" \
            --policies least-outstanding-fastest,weighted-least-request,shortest-expected-prefill,predictive
    done
done
echo
echo "## set $set_, control: homogeneous fleet"
$sim compare --set "$set_" --cars "$cars" --homogeneous --load 0.5,0.8 --seeds "$seeds" \
    --policies least-outstanding,least-outstanding-fastest,weighted-least-request,shortest-expected-prefill,predictive
