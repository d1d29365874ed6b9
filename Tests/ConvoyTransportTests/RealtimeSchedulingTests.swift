import Foundation
import Testing
@testable import ConvoyTransport

@Suite("Real-time scheduling of the threads that move messages")
struct RealtimeSchedulingTests {
    /// `SCHED_RESET_ON_FORK`, or-ed into the policy `sched_getscheduler` reports.
    static let resetOnFork: Int32 = 0x4000_0000

    /// Runs `body` on a thread of its own (never change the policy of a thread of Swift's pool).
    static func onPlainThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { done in
            Thread { done.resume(returning: body()) }.start()
        }
    }

    /// The policies of this process's libzmq I/O threads (those that still exist).
    static func ioPolicies() -> [Int32] {
        RealtimeScheduling.libzmqIOThreads().map { sched_getscheduler($0) }.filter { $0 != -1 }
    }

    @Test("a realtime context starts libzmq's I/O thread under SCHED_FIFO, a node's I/O thread goes real-time, and both come back")
    func ioThreadsGoRealtimeAndBack() async throws {
        // Only this test asks for real-time contexts: a FIFO libzmq thread in the process is its.
        let context = try ZMQContext(realtimeIO: true)
        let socket = try Socket(context: context, spec: SocketSpec(.pub, bind: ["inproc://rt-\(UUID().uuidString)"]))
        let permitted = RealtimeScheduling.permitted()
        let deadline = Date().addingTimeInterval(5)
        while permitted && !Self.ioPolicies().contains(SCHED_FIFO) && Date() < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        let fifo = Self.ioPolicies().contains(SCHED_FIFO)
        let (entered, during, after, ioAfter) = await Self.onPlainThread {
            let entered = RealtimeScheduling.setCallingThread(true)
            let during = sched_getscheduler(0)
            RealtimeScheduling.leave()
            return (entered, during, sched_getscheduler(0), Self.ioPolicies())
        }
        if permitted {
            #expect(fifo, "no libzmq I/O thread under SCHED_FIFO: \(Self.ioPolicies())")
            #expect(entered)
            #expect(during == SCHED_FIFO | Self.resetOnFork)
        } else {
            // Without CAP_SYS_NICE or an RLIMIT_RTPRIO: refused, nothing changed, and libzmq
            // was not asked (it would have aborted).
            #expect(!fifo)
            #expect(!entered)
            #expect(during == SCHED_OTHER)
        }
        #expect(after == SCHED_OTHER)
        #expect(ioAfter.allSatisfy { $0 == SCHED_OTHER }, "policies after leave(): \(ioAfter)")
        socket.close()
        await context.close()
    }
}
