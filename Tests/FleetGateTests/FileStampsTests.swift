import Testing

@testable import FleetGate

@Suite("File stamps: which kinds of credential file changed")
struct FileStampsTests {
    enum Kind: Hashable, CaseIterable {
        case certificates
        case keys
    }

    @Test("Nothing changed, one file of a kind, both kinds, a new path; a file that keeps failing is reported once")
    func changes() {
        var disk = ["cert": "a", "key": "a", "keys": "a"]
        let files: [Kind: [String]] = [.certificates: ["cert", "key"], .keys: ["keys"]]
        var stamps = FileStamps(files) { disk[$0] ?? "missing" }
        let kinds = Kind.allCases
        func changed(_ files: [Kind: [String]] = files) -> [Kind] {
            stamps.changed(files, in: kinds) { disk[$0] ?? "missing" }
        }
        #expect(changed() == [])
        disk["key"] = "b"
        #expect(changed() == [.certificates])
        #expect(changed() == [], "reported once: a pair that does not load is tried again when it next changes")
        disk["cert"] = "b"
        disk["keys"] = "b"
        #expect(changed() == [.certificates, .keys], "each kind once, in order")
        disk["keys"] = nil
        #expect(changed() == [.keys], "a file gone is a change")
        #expect(changed() == [])
        // The configuration names another file (a reload): its kind is reloaded once.
        disk["other"] = "a"
        #expect(changed([.certificates: ["other", "key"], .keys: ["keys"]]) == [.certificates])
        #expect(changed([.certificates: ["other", "key"], .keys: ["keys"]]) == [])
    }
}
