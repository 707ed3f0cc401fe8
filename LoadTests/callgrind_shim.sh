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
# Waits until the gateway whose admin port is $1 has its one car registered.
wait_car() { for _ in $(seq 1800); do curl -s "http://127.0.0.1:$1/readyz" | grep -q '"cars":1' && return; sleep 0.1; done; }
# The instruction total of callgrind output file $1.
callgrind_total() { awk '/^(summary|totals):/ {print $2; exit}' "$1"; }
