import FleetScheduler

/// `fleet_cars{region,zone,state,plugged}` in Prometheus' text format, rendered at each scrape from
/// the connected cars and the region map.
///
/// Rendered, not registered as gauges: swift-prometheus copies a metric family to add a label set,
/// so registering every region's series made the first scrape quadratic in the map's size (1,000
/// regions held an event loop for 1.1 s, 20,000 for more than ten minutes).
///
/// Every region of the map has its `state="serving",plugged="true"` series, at 0 without a car, so
/// the "no serving car in a zone" alert and the dashboards see each region before its first car. The
/// other label sets appear while they count a car; a car whose region a reload removed is counted
/// under its own region and zone until it leaves.
struct FleetCarsExposition: Equatable {
    /// One series' labels.
    struct Labels: Hashable, Comparable {
        var region: String
        var zone: String
        var state: String
        var plugged: Bool

        static func < (a: Labels, b: Labels) -> Bool {
            (a.region, a.zone, a.state, a.plugged ? 1 : 0) < (b.region, b.zone, b.state, b.plugged ? 1 : 0)
        }
    }

    /// The value of each series to render.
    private(set) var series: [Labels: Int] = [:]

    /// - Parameters:
    ///   - cars: each connected car's labels.
    ///   - regions: the region map's regions and their zones.
    init(cars: some Sequence<Labels>, regions: [String: String]) {
        for (region, zone) in regions {
            self.series[Labels(region: region, zone: zone, state: "serving", plugged: true)] = 0
        }
        for car in cars { self.series[car, default: 0] += 1 }
    }

    /// Appends the family (its `# TYPE` line and one line per series, sorted) to `buffer`.
    func write(into buffer: inout [UInt8]) {
        buffer.append(contentsOf: "# TYPE fleet_cars gauge\n".utf8)
        for (labels, count) in self.series.sorted(by: { $0.key < $1.key }) {
            buffer.append(contentsOf: #"fleet_cars{region=""#.utf8)
            Self.appendEscaped(labels.region, to: &buffer)
            buffer.append(contentsOf: #"",zone=""#.utf8)
            Self.appendEscaped(labels.zone, to: &buffer)
            buffer.append(contentsOf: #"",state=""#.utf8)
            buffer.append(contentsOf: labels.state.utf8)
            buffer.append(contentsOf: (labels.plugged ? #"",plugged="true"} "# : #"",plugged="false"} "#).utf8)
            buffer.append(contentsOf: String(count).utf8)
            buffer.append(UInt8(ascii: "\n"))
        }
    }

    /// A label value as the text format wants it: `\`, `"` and line feeds escaped.
    private static func appendEscaped(_ value: String, to buffer: inout [UInt8]) {
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\\"): buffer.append(contentsOf: #"\\"#.utf8)
            case UInt8(ascii: "\""): buffer.append(contentsOf: #"\""#.utf8)
            case UInt8(ascii: "\n"): buffer.append(contentsOf: #"\n"#.utf8)
            default: buffer.append(byte)
            }
        }
    }
}
