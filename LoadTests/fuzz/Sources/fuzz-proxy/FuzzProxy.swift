import FleetFuzzDriver
import FleetFuzzEntries

/// libFuzzer target `proxy` (LoadTests/fuzz/README.md): see `FuzzTarget.proxy`.
@main
enum FuzzProxy {
    static func main() { libFuzzerMain { FuzzTarget.proxy.fuzz($0, $1) } }
}
