import Testing

@testable import FleetGate

@Suite("File stamps: which kinds of credential file changed and settled")
struct FileStampsTests {
    enum Kind: Hashable, CaseIterable {
        case certificates
        case keys
    }

    @Test("A change is due once it looks the same on two polls, once; each kind once, in order; a new path counts")
    func changes() {
        var disk = ["cert": "a", "key": "a", "keys": "a"]
        let files: [Kind: [String]] = [.certificates: ["cert", "key"], .keys: ["keys"]]
        var stamps = FileStamps(files) { disk[$0] ?? "missing" }
        func due(_ files: [Kind: [String]] = files) -> [Kind] {
            stamps.due(files, in: Kind.allCases) { disk[$0] ?? "missing" }
        }
        #expect(due() == [])
        disk["key"] = "b"
        #expect(due() == [], "not settled: it may be half-written")
        #expect(due() == [.certificates])
        #expect(due() == [], "applied once: a pair that does not load is tried again when it next changes")
        // Caught mid-write: truncated at one poll, whole at the next, then settled.
        disk["keys"] = "empty"
        #expect(due() == [])
        disk["keys"] = "b"
        #expect(due() == [])
        #expect(due() == [.keys], "applied whole, never half-written")
        disk["cert"] = "c"
        disk["keys"] = nil
        #expect(due() == [])
        #expect(due() == [.certificates, .keys], "each kind once, in order; a file gone is a change")
        // The configuration names another file (a reload): its kind is reloaded once.
        disk["other"] = "a"
        let renamed: [Kind: [String]] = [.certificates: ["other", "key"], .keys: ["keys"]]
        #expect(due(renamed) == [])
        #expect(due(renamed) == [.certificates])
        #expect(due(renamed) == [])
    }

    @Test("A failed reload is due at every poll until one succeeds, without a change, but never half-written")
    func retries() {
        var disk = ["keys": "a"]
        var stamps = FileStamps([Kind.keys: ["keys"]]) { disk[$0] ?? "missing" }
        func due() -> [Kind] { stamps.due([.keys: ["keys"]], in: Kind.allCases) { disk[$0] ?? "missing" } }
        #expect(due() == [])
        stamps.failed(.keys)
        #expect(stamps.isRetrying(.keys))
        #expect(due() == [.keys])
        #expect(due() == [.keys])
        // Rewritten while retrying: not until it looks the same on two polls (helper-83).
        disk["keys"] = "half"
        #expect(due() == [])
        #expect(due() == [.keys])
        stamps.applied(.keys)
        #expect(!stamps.isRetrying(.keys))
        #expect(due() == [])
    }
}
