import FleetFuzzDriver
import FleetFuzzEntries

/// libFuzzer target `request` (LoadTests/fuzz/README.md): see `FuzzTarget.request`.
@main
enum FuzzRequest {
    static func main() { libFuzzerMain { FuzzTarget.request.fuzz($0, $1) } }
}
