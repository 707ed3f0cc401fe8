# Sourced by the callgrind scripts: builds $1/shim.so, which valgrind 3.19 needs to run a Swift async
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
