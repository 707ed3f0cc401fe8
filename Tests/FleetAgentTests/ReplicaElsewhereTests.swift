import FleetAgent
import NIOCore
import Synchronization
import Testing

/// Issue #21: the directory tells each tunnel when the car's other tunnels change, once a change.
@Suite("Replica directory: where the other tunnels are")
struct ReplicaElsewhereTests {
    @Test("A tunnel's hello says where the others are; a tunnel that comes or goes makes the others say it, once")
    func elsewhere() {
        let directory = ReplicaDirectory(
            configuration: .init(tunnels: 2, backoff: Backoff(initial: .milliseconds(200), maximum: .seconds(30))),
            configured: [.init(host: "10.0.0.1", port: 7443), .init(host: "10.0.0.2", port: 7443)], clock: { 0 })
        let said = Mutex<[Int: [[String]]]>([:])
        let open = Mutex(false)  // slot 0's status stream
        for slot in 0..<2 {
            directory.onElsewhereChange(slot: slot) { list in
                guard slot == 1 || open.withLock({ $0 }) else { return false }
                said.withLock { $0[slot, default: []].append(list) }
                return true
            }
        }
        // Slot 0 connects and writes its hello: nothing elsewhere yet, nobody else to tell.
        _ = directory.withChoice { $0.next(slot: 0, now: 0, random: 0) }
        directory.withChoice { $0.connected(slot: 0, now: 0) }
        _ = directory.withChoice { $0.claimPrimary(slot: 0) }
        #expect(directory.helloElsewhere(slot: 0).isEmpty)
        directory.tunnelsChanged()
        #expect(said.withLock { $0 }.isEmpty)
        // Slot 1's hello names slot 0's replica; slot 0 says slot 1's is there — once, however often asked.
        _ = directory.withChoice { $0.next(slot: 1, now: 0, random: 0) }
        directory.withChoice { $0.connected(slot: 1, now: 0) }
        _ = directory.withChoice { $0.claimPrimary(slot: 1) }
        #expect(directory.helloElsewhere(slot: 1) == ["10.0.0.1:7443"])
        // Slot 0's status stream is not open yet (its hello still being written): it cannot say it...
        directory.tunnelsChanged()
        #expect(said.withLock { $0 }.isEmpty)
        // ...so it says it once its stream opens (the attach's tunnelsChanged), once however often asked.
        open.withLock { $0 = true }
        directory.tunnelsChanged()
        directory.tunnelsChanged()
        #expect(said.withLock { $0 } == [0: [["10.0.0.2:7443"]]])
        // Slot 1's tunnel goes: slot 0 says nothing is elsewhere now.
        directory.lost(slot: 1, random: 0)
        #expect(said.withLock { $0 } == [0: [["10.0.0.2:7443"], []]])
    }
}
