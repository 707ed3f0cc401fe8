import FleetFuzzEntries
import Foundation
import Testing

/// CI's half of issue #20: every committed corpus file of every libFuzzer target goes through the
/// same entry the fuzzer calls (`FuzzTarget.run`), in the normal (unsanitised) build. A crash
/// fails the run; a broken invariant is reported with the file's name.
@Suite("Fuzz corpus replay")
struct CorpusReplayTests {
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../LoadTests/fuzz/corpus").standardizedFileURL

    @Test(
        "Every committed corpus file passes its target", .timeLimit(.minutes(1)), arguments: FuzzTarget.allCases)
    func replay(_ target: FuzzTarget) throws {
        let directory = Self.corpus.appendingPathComponent(target.rawValue)
        let files = try FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)
            .filter { !$0.lastPathComponent.hasPrefix(".") }
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
        // The seeds alone are more than this; fewer means the corpus went missing.
        #expect(files.count >= 10, "\(target.rawValue): only \(files.count) corpus files")
        for file in files {
            let bytes = [UInt8](try Data(contentsOf: file))
            do throws(FuzzFinding) {
                try target.run(bytes)
            } catch {
                Issue.record("\(target.rawValue)/\(file.lastPathComponent): \(error)")
            }
        }
    }
}
