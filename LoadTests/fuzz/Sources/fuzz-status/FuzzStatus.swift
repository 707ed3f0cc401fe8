import FleetFuzzDriver
import FleetFuzzEntries

/// libFuzzer target `status` (LoadTests/fuzz/README.md): see `FuzzTarget.status`.
@main
enum FuzzStatus {
    static func main() { libFuzzerMain { FuzzTarget.status.fuzz($0, $1) } }
}
