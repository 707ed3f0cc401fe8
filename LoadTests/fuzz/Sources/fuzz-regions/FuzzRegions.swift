import FleetFuzzDriver
import FleetFuzzEntries

/// libFuzzer target `regions` (LoadTests/fuzz/README.md): see `FuzzTarget.regions`.
@main
enum FuzzRegions {
    static func main() { libFuzzerMain { FuzzTarget.regions.fuzz($0, $1) } }
}
