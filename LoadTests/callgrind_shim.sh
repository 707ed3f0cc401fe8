# Sourced by the callgrind scripts: the start-up helpers they share (below), and build_callgrind_shim,
# which builds $1/shim.so, which valgrind 3.19 needs to run a Swift async
# main (libdispatch's dispatch_main() ends the main thread, which crashes valgrind; the shim serves the
# main queue from the main thread instead).
build_callgrind_shim() {
  local dir=$1 swiftlib
  cat > "$dir/shim.c" <<'SHIM'
#include <unistd.h>
extern void _dispatch_main_queue_callback_4CF(void *);
void dispatch_main(void) { for (;;) { _dispatch_main_queue_callback_4CF(0); usleep(100000); } }
SHIM
  swiftlib=$(dirname "$(readlink -f "$(command -v swift)")")/../lib/swift/linux
  gcc -shared -fPIC -o "$dir/shim.so" "$dir/shim.c" -L"$swiftlib" -ldispatch -Wl,-rpath,"$swiftlib"
}

# The start-up and accounting the callgrind scripts share.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Waits (up to 3 min: a gateway under valgrind starts slowly) until 127.0.0.1:$1 accepts connections.
wait_port() { for _ in $(seq 1800); do (echo > /dev/tcp/127.0.0.1/"$1") 2>/dev/null && return; sleep 0.1; done; }
# Waits (up to 2 min) until the gateway on client port $1 answers the chat request in file $2 with 200: central's
# models are known after the central directory's first refresh.
wait_central() {
  for _ in $(seq 600); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' --http2-prior-knowledge -H 'content-type: application/json' \
      -d @"$2" "http://127.0.0.1:$1/v1/chat/completions")" = 200 ] && return
    sleep 0.2
  done
}
# Waits until the gateway whose admin port is $1 has its one car registered.
wait_car() { for _ in $(seq 1800); do curl -s "http://127.0.0.1:$1/readyz" | grep -q '"cars":1' && return; sleep 0.1; done; }
# The instruction total of callgrind output file $1.
callgrind_total() { awk '/^(summary|totals):/ {print $2; exit}' "$1"; }
# The total of the run whose callgrind output is $1 (binary $2, $3 requests), then the output removed;
# KEEP=DIR keeps the N2 run as DIR/callgrind-<binary>.out, for `callgrind_annotate --inclusive=yes`.
callgrind_result() {
  if [ -n "${KEEP:-}" ] && [ "$3" = "$N2" ]; then mkdir -p "$KEEP"; cp "$1" "$KEEP/callgrind-$(basename "$2").out"; fi
  callgrind_total "$1"; rm -f "${1%.1}" "$1"
}
# For each build directory after $1 (the program measured): a copy of it stripped of debug info, then the
# script's `instructions DIR BIN N` at N1 and N2 (up to three tries, while a run touches $work/failed),
# and the script's `report DIR IR_AT_N1 IR_AT_N2`.
each_build() {
  local program=$1 dir bin a b; shift
  for dir in "$@"; do
    bin=$work/$program-$(echo "$dir" | tr -c 'A-Za-z0-9' _)
    strip --strip-debug -o "$bin" "$dir/$program"
    for _ in 1 2 3; do
      rm -f "$work/failed"; a=$(instructions "$dir" "$bin" "$N1"); [ -e "$work/failed" ] && continue
      b=$(instructions "$dir" "$bin" "$N2"); [ -e "$work/failed" ] || break
    done
    report "$dir" "$a" "$b"
  done
}
# Starts a synthetic car (fleet-agent from build DIR $1) on the gateway's tunnel port $2 with $4 slots
# decoding $5 tokens/s, and waits until the gateway (admin port $3) has it; its pid in $car_pid.
start_synthetic_car() {
  local token
  token=$("$1/fleetgate" token issue --vehicle-id bench-car --region eu-central)
  FLEET_AGENT_TOKEN=$token "$1/fleet-agent" run --gateway "127.0.0.1:$2" --vehicle-id bench-car \
    --region eu-central --hardware ai5 --slots "$4" --decode-tps "$5" --prefill-tps 100000 --log-level warning \
    > /dev/null 2>&1 &
  car_pid=$!
  wait_car "$3"
}
# Sends $3 sequential streams with fleet-load $1 to the client port $2; a run where not all are ok
# touches $work/failed (each_build then tries again).
sequential_streams() {
  "$1" --target "127.0.0.1:$2" --rate 0 --count "$3" > "$work/load.txt" 2>&1 || true
  grep -q "\"ok\":$3[,}]" "$work/load.txt" || { tail -1 "$work/load.txt" >&2; touch "$work/failed"; }
}
