import FleetFuzzDriver
import FleetFuzzEntries

/// libFuzzer target `origin` (LoadTests/fuzz/README.md): see `FuzzTarget.origin`.
@main
enum FuzzOrigin {
    static func main() { libFuzzerMain { FuzzTarget.origin.fuzz($0, $1) } }
}
