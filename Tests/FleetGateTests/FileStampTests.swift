import FleetConfiguration
import FleetTesting
import Foundation
import Testing

@Suite("File stamps on disk: what a rewrite cannot hide")
struct FileStampTests {
    @Test("A rewrite to the same size with its modification time restored is a change (helper-82)")
    func restoredModificationTime() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("filestamp-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("revoked.txt").path
        let reference = directory.appendingPathComponent("reference").path
        try Data("car-a\n".utf8).write(to: URL(fileURLWithPath: file))
        try Data().write(to: URL(fileURLWithPath: reference))
        try Self.touch(reference, timesOf: file)
        let before = FileStamp.of(file)
        let modified = try FileManager.default.attributesOfItem(atPath: file)[.modificationDate] as? Date
        #expect(FileStamp.of(file) == before, "an unchanged file stamps the same")
        // In place (same inode), the same size, and its times put back to the nanosecond by `touch -r`.
        let handle = try #require(FileHandle(forWritingAtPath: file))
        try handle.write(contentsOf: Data("car-b\n".utf8))
        try handle.close()
        try Self.touch(file, timesOf: reference)
        let attributes = try FileManager.default.attributesOfItem(atPath: file)
        #expect(attributes[.modificationDate] as? Date == modified && attributes[.size] as? Int == 6)
        #expect(FileStamp.of(file) != before)
        // A `chmod` or `chown` that changes nothing (a kubelet resetting a Secret volume's owner) is no change.
        let rewritten = FileStamp.of(file)
        let mode = try #require(attributes[.posixPermissions] as? Int)
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: file)
        #expect(FileStamp.of(file) == rewritten)
        #expect(!FileStamp.isEmpty(file))
        try Data().write(to: URL(fileURLWithPath: file))
        #expect(FileStamp.isEmpty(file))
        try FileManager.default.removeItem(atPath: file)
        #expect(FileStamp.of(file) == "missing")
        #expect(!FileStamp.isEmpty(file))
    }

    /// `touch -r source file`: the file's access and modification times set to the source's.
    static func touch(_ file: String, timesOf source: String) throws {
        let touch = Process()
        touch.executableURL = URL(fileURLWithPath: "/usr/bin/touch")
        touch.arguments = ["-r", source, file]
        try ChildLauncher.run(touch)
        #expect(ChildExit.wait(for: touch) == 0)
    }
}
