@testable import FleetProtocol
import Testing

/// The reader's one-pass integer against its definition: `number()` validates, then a second pass
/// converts (the reader's code before issue #19's agent work).
@Suite("ChunkScanner.Reader numbers")
struct ChunkScannerReaderTests {
    private func reference(_ reader: inout ChunkScanner.Reader) throws(ChunkScanner.Malformed) -> Int? {
        let start = reader.position
        try reader.number()
        var value = 0
        var negative = false
        for index in start..<reader.position {
            let byte = reader.bytes[index]
            if byte == UInt8(ascii: "-") {
                negative = true
                continue
            }
            guard (0x30...0x39).contains(byte) else { return nil }
            let (times, o1) = value.multipliedReportingOverflow(by: 10)
            let (plus, o2) = times.addingReportingOverflow(Int(byte - 0x30))
            if o1 || o2 { return nil }
            value = plus
        }
        return negative ? -value : value
    }

    /// Value (or the offset of the failure) and where the reader stopped.
    private func run(_ text: [UInt8], reference: Bool) -> String {
        text.withUnsafeBytes { bytes in
            var reader = ChunkScanner.Reader(bytes: bytes)
            do throws(ChunkScanner.Malformed) {
                let value = reference ? try self.reference(&reader) : try reader.plainInteger()
                return "\(value.map(String.init) ?? "nil") at \(reader.position)"
            } catch {
                return "malformed at \(error.offset)"
            }
        }
    }

    @Test("One pass gives what validating and converting gave: values, nil, errors and where it stopped")
    func plainIntegerMatchesReference() {
        let fixed = [
            "0", "-0", "7", "-12", "01", "-01", "00.5", "0.5", "1.", "1e5", "1E+2", "2e", "-", "--1", "", "x",
            "9223372036854775807", "9223372036854775808", "-9223372036854775808", "-9223372036854775807",
            "12345678901234567890123", "42,", "42}", "3.14e-2]", "0x10",
        ]
        for text in fixed {
            let bytes = Array(text.utf8)
            #expect(self.run(bytes, reference: false) == self.run(bytes, reference: true), "\(text)")
        }
        var random = SplitMix64(seed: 11)
        let alphabet = Array("0123456789-+.eE,}".utf8)
        for _ in 0..<20_000 {
            let bytes = (0..<Int(random.next() % 24)).map { _ in alphabet[Int(random.next() % UInt64(alphabet.count))] }
            #expect(
                self.run(bytes, reference: false) == self.run(bytes, reference: true),
                "\(String(decoding: bytes, as: UTF8.self))")
        }
    }
}
