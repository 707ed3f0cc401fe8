import FleetFuzzDriver
import FleetFuzzEntries

/// libFuzzer target `sse` (LoadTests/fuzz/README.md): see `FuzzTarget.sse`.
@main
enum FuzzSSE {
    static func main() { libFuzzerMain { FuzzTarget.sse.fuzz($0, $1) } }
}
