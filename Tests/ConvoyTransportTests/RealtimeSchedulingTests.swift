import Foundation
import Testing
@testable import ConvoyTransport

@Suite("Real-time scheduling of the threads that move messages", .serialized)
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
        // Only this suite (serialized) asks for real-time contexts: a FIFO libzmq thread in the process is this test's.
        let context = try ZMQContext(realtimePriority: RealtimeScheduling.priority)
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

    /// The real-time priorities of this process's threads under SCHED_FIFO.
    static func fifoPriorities() -> [Int32] {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
        return tasks.compactMap(pid_t.init).compactMap { tid in
            var param = sched_param()
            guard sched_getscheduler(tid) & ~resetOnFork == SCHED_FIFO, sched_getparam(tid, &param) == 0 else { return nil }
            return param.sched_priority
        }
    }

    @Test("a real-time bus: its proxy thread at the nodes' priority, its libzmq I/O thread below it")
    func theBusLibzmqThreadYieldsToTheNodes() async throws {
        let forwarder = try Forwarder(inbound: "inproc://rt-in-\(UUID().uuidString)",
                                      outbound: "inproc://rt-out-\(UUID().uuidString)", realtime: true)
        let deadline = Date().addingTimeInterval(5)
        let permitted = RealtimeScheduling.permitted()
        while permitted && !Set(Self.fifoPriorities()).isSuperset(of: [RealtimeScheduling.busPriority, RealtimeScheduling.priority])
              && Date() < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        let priorities = Set(Self.fifoPriorities())
        forwarder.stop()
        #expect(RealtimeScheduling.busPriority < RealtimeScheduling.priority)
        if permitted {
            #expect(priorities.isSuperset(of: [RealtimeScheduling.busPriority, RealtimeScheduling.priority]), "\(priorities)")
        } else {
            #expect(priorities.isEmpty)
        }
    }
}
