import ConvoyReasoning
import Testing

@Suite struct ModelledComputeTests {
    let rtx = DeviceProfile.catalog["rtx-4090"]!
    var t: Double {
        ComputeModel.inferenceTime(model: ModelProfile.catalog["llama-2-13b"]!, device: rtx, inputTokens: 256, outputTokens: 32)
    }

    func work(_ id: String, _ attempt: Int = 1) -> ComputeWork {
        ComputeWork(requestID: id, attempt: attempt, model: "llama-2-13b", inputTokens: 256, outputTokens: 32)
    }

    @Test func completionsArriveOnceAtTheFinishForEveryWaitingAttempt() {
        var compute = ModelledCompute(device: rtx, slots: 1, queueCapacity: 2)
        let r1 = compute.admit(work("a"), now: 0)
        #expect(r1 == .admitted(wakeAt: t))
        // A failover re-send of the same request joins the job instead of computing it twice.
        let r2 = compute.admit(work("a", 2), now: 0.01)
        #expect(r2 == .joined(wakeAt: t))
        let r3 = compute.completions(now: t * 0.99).isEmpty
        #expect(r3)
        let r4 = compute.completions(now: t)
        #expect(r4 == [ComputeCompletion(requestID: "a", attempts: [1, 2], queueWait: 0, computeTime: t)])
        let r5 = compute.completions(now: 2 * t).isEmpty
        #expect(r5, "each job is reported once")
        // A re-send after the job finished is answered at once from the remembered job.
        let r6 = compute.admit(work("a", 3), now: 3 * t)
        #expect(r6 == .joined(wakeAt: 3 * t))
        let r7 = compute.completions(now: 3 * t).map(\.attempts)
        #expect(r7 == [[3]])
        #expect(compute.accounting.jobs == 1)
        #expect(compute.accounting.computeMs == Int((t * 1000).rounded()))
    }

    @Test func cancelIsAttemptAware() {
        var compute = ModelledCompute(device: rtx, slots: 1, queueCapacity: 2)
        _ = compute.admit(work("a"), now: 0)
        _ = compute.admit(work("a", 2), now: 0)
        // Withdrawing one attempt keeps the job for the other: nothing is given back.
        let r8 = compute.cancel(requestID: "a", attempt: 1, now: t / 2)
        #expect(r8)
        #expect(compute.accounting.computeMs == Int((t * 1000).rounded()))
        #expect(compute.busy(now: t / 2) == 1)
        let r9 = compute.cancel(requestID: "a", attempt: 1, now: t / 2)
        #expect(!r9, "already withdrawn")
        // The last attempt withdrawn: the job goes and its remaining compute is given back.
        let r10 = compute.cancel(requestID: "a", attempt: 2, now: t / 2)
        #expect(r10)
        #expect(compute.busy(now: t / 2) == 0)
        #expect(compute.accounting.computeMs == Int((t * 1000).rounded()) - Int((t / 2 * 1000).rounded()))
        let r11 = compute.completions(now: t).isEmpty
        #expect(r11)
        let r12 = compute.cancel(requestID: "nobody", attempt: 1, now: 0)
        #expect(!r12)
    }

    @Test func aCancelledAttemptIsNotAnsweredWhileTheOtherIs() {
        var compute = ModelledCompute(device: rtx, slots: 1, queueCapacity: 2)
        _ = compute.admit(work("a"), now: 0)
        _ = compute.admit(work("a", 2), now: 0)
        _ = compute.cancel(requestID: "a", attempt: 2, now: 0.001)
        let r13 = compute.completions(now: t).map(\.attempts)
        #expect(r13 == [[1]])
    }
}

@Suite struct ServingDecisionTests {
    let rtx = DeviceProfile.catalog["rtx-4090"]!
    var t: Double {
        ComputeModel.inferenceTime(model: ModelProfile.catalog["llama-2-13b"]!, device: rtx, inputTokens: 256, outputTokens: 32)
    }

    func server(queue: Int) -> (any ComputeBackend)? { ModelledCompute(device: rtx, slots: 1, queueCapacity: queue) }

    func decide(_ compute: inout (any ComputeBackend)?, id: String, attempt: Int = 1, next: Bool, replyBy: Double, now: Double = 0,
                model: String = "llama-2-13b", slack: Double = 0, late: Bool = true) -> ServingDecision {
        ServingDecision.decide(compute: &compute, nextHopAvailable: next,
                               work: ComputeWork(requestID: id, attempt: attempt, model: model, inputTokens: 256, outputTokens: 32),
                               replyBy: replyBy, returnSlack: slack, lateCompute: late, now: now)
    }

    @Test func servesLocallyWhenItFinishesInTime() throws {
        var compute = server(queue: 2)
        #expect(decide(&compute, id: "a", next: true, replyBy: t + 0.01) == .serve(wakeAt: t, duplicate: false))
        // Exactly on time counts as in time.
        var exact = server(queue: 2)
        let finish = try #require(exact?.estimatedFinish(model: "llama-2-13b", inputTokens: 256, outputTokens: 32, now: 0))
        #expect(decide(&exact, id: "a", next: true, replyBy: finish) == .serve(wakeAt: finish, duplicate: false))
        // With a return slack, on time is not enough.
        var slack = server(queue: 2)
        #expect(decide(&slack, id: "a", next: true, replyBy: finish, slack: 0.1) == .forward)
    }

    @Test func forwardsWhenLateAndTheNextHopIsAvailable() {
        var compute = server(queue: 2)
        _ = decide(&compute, id: "a", next: true, replyBy: 10)
        // b would wait for a: finish at 2t, after its reply-by.
        #expect(decide(&compute, id: "b", next: true, replyBy: 1.5 * t) == .forward)
        #expect(compute?.hasJob("b") == false, "a forwarded request is not admitted here")
        #expect(compute?.waiting(now: 0) == 0)
    }

    @Test func servesLateWhenThereIsNoNextHopUnlessLateComputeIsOff() {
        var compute = server(queue: 2)
        _ = decide(&compute, id: "a", next: false, replyBy: 10)
        #expect(decide(&compute, id: "c", next: false, replyBy: 1.5 * t, late: false) == .failed("cannot-serve-in-time"))
        guard case .serve(let wakeAt?, duplicate: false) = decide(&compute, id: "b", next: false, replyBy: 1.5 * t) else {
            Issue.record("expected serve"); return
        }
        #expect(isRelativelyClose(wakeAt, 2 * t, 1e-12))
        #expect(compute?.waiting(now: 0) == 1)
    }

    @Test func rejectsWhenFullAndNoNextHop() {
        var compute = server(queue: 0)
        _ = decide(&compute, id: "a", next: false, replyBy: 10)
        #expect(decide(&compute, id: "b", next: false, replyBy: 10) == .rejected("full"))
        #expect(decide(&compute, id: "b", next: true, replyBy: 10) == .forward)
        #expect(compute?.hasJob("b") == false)
    }

    @Test func failsWithoutComputeAndWithoutNextHop() {
        var none: (any ComputeBackend)? = nil
        #expect(decide(&none, id: "a", next: false, replyBy: 10) == .failed("no-compute-and-next-hop-unavailable"))
        #expect(decide(&none, id: "a", next: true, replyBy: 10) == .forward)
        // A model this server cannot run: forwarded if possible, else failed with the reason.
        var compute = server(queue: 1)
        #expect(decide(&compute, id: "b", next: true, replyBy: 100, model: "llama-2-70b") == .forward)
        guard case .failed(let why) = decide(&compute, id: "b", next: false, replyBy: 100, model: "llama-2-70b") else {
            Issue.record("expected failed"); return
        }
        #expect(why.contains("does not fit"))
    }

    @Test func duplicateJoinsTheSameJob() {
        var compute = server(queue: 0)
        #expect(decide(&compute, id: "a", next: true, replyBy: 10) == .serve(wakeAt: t, duplicate: false))
        // The re-send arrives while the server is full and would be late: still the same job, not forwarded.
        #expect(decide(&compute, id: "a", attempt: 2, next: true, replyBy: 0.001, now: 0.0005) == .serve(wakeAt: t, duplicate: true))
        #expect(decide(&compute, id: "a", attempt: 3, next: false, replyBy: 0.001, now: 0.0005) == .serve(wakeAt: t, duplicate: true))
        #expect(compute?.busy(now: 0.0005) == 1 && compute?.waiting(now: 0.0005) == 0)
        let r14 = compute?.completions(now: t).map(\.attempts)
        #expect(r14 == [[1, 2, 3]])
    }
}
