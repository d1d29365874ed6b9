import ConvoyReasoning
import Testing

@Suite struct ComputeServerTests {
    let rtx = DeviceProfile.catalog["rtx-4090"]!

    func serviceTime(_ model: String = "llama-2-13b", input: Int = 256, output: Int = 32) -> Double {
        ComputeModel.inferenceTime(model: ModelProfile.catalog[model]!, device: rtx, inputTokens: input, outputTokens: output)
    }

    @Test func slotsRunInParallelAndTheNextRequestWaitsForTheEarliestSlot() throws {
        var server = ComputeServer(device: rtx, slots: 2, queueCapacity: 4)
        let t = serviceTime()
        let long = serviceTime(output: 40)
        let a = try #require(admittedJob(server.admit(requestID: "a", model: "llama-2-13b", inputTokens: 256, outputTokens: 40, now: 1)))
        let b = try #require(admittedJob(server.admit(requestID: "b", model: "llama-2-13b", inputTokens: 256, outputTokens: 32, now: 1)))
        // Both start at once, each on its own slot at full speed.
        #expect(a.startAt == 1 && a.queueWait == 0 && isRelativelyClose(a.computeTime, long, 1e-12))
        #expect(b.startAt == 1 && b.queueWait == 0 && isRelativelyClose(b.finishAt, 1 + t, 1e-12))
        #expect(server.busy(now: 1) == 2 && server.waiting(now: 1) == 0)
        // The third waits for b's slot, which frees first.
        let c = try #require(admittedJob(server.admit(requestID: "c", model: "llama-2-13b", inputTokens: 256, outputTokens: 32, now: 1.001)))
        #expect(c.startAt == b.finishAt)
        #expect(isRelativelyClose(c.queueWait, b.finishAt - 1.001, 1e-12))
        #expect(isRelativelyClose(c.computeTime, t, 1e-9))
        #expect(c.admittedAt == 1.001)
        // The fourth waits for a's slot (c now holds b's until 1 + 2t, and 1 + long is earlier).
        #expect(b.finishAt < a.finishAt && a.finishAt < c.finishAt)
        let d = try #require(admittedJob(server.admit(requestID: "d", model: "llama-2-13b", inputTokens: 256, outputTokens: 32, now: 1.002)))
        #expect(d.startAt == a.finishAt)
        #expect(server.waiting(now: 1.002) == 2)
        #expect(server.job("c") == c && server.job("zzz") == nil)
    }

    @Test func cancellingTheLastJobOfASlotGivesItsTimeBack() throws {
        var server = ComputeServer(device: rtx, slots: 1, queueCapacity: 4)
        let t = serviceTime()
        let a = try #require(admittedJob(server.admit(requestID: "a", model: "llama-2-13b", inputTokens: 256, outputTokens: 32, now: 0)))
        let b = try #require(admittedJob(server.admit(requestID: "b", model: "llama-2-13b", inputTokens: 256, outputTokens: 32, now: 0)))
        // a has b queued behind it: cancelling a saves nothing (b's schedule is fixed).
        #expect(server.cancel(requestID: "a", now: t / 2) == 0)
        #expect(server.job("a") == a)
        // b is last on the slot and has not started: all of it comes back, and the slot is free from a's end.
        #expect(isRelativelyClose(server.cancel(requestID: "b", now: t / 2), t, 1e-9))
        #expect(server.job("b") == nil)
        let c = try #require(admittedJob(server.admit(requestID: "c", model: "llama-2-13b", inputTokens: 256, outputTokens: 32, now: t / 2)))
        #expect(c.startAt == a.finishAt)
        // Cancelled halfway through: the other half comes back.
        #expect(isRelativelyClose(server.cancel(requestID: "c", now: c.startAt + t / 2), t / 2, 1e-9))
        #expect(server.cancel(requestID: "c", now: c.startAt + t / 2) == 0, "already cancelled")
        #expect(server.cancel(requestID: "a", now: 10 * t) == 0, "already finished")
        #expect(server.cancel(requestID: "nobody", now: 0) == 0)
        _ = b
    }

    @Test func admissionControlRejectsWhenQueueFullAndAllSlotsBusy() throws {
        var server = ComputeServer(device: rtx, slots: 2, queueCapacity: 1)
        let t = serviceTime()
        for id in ["a", "b", "c"] {
            _ = try #require(admittedJob(server.admit(requestID: id, model: "llama-2-13b", inputTokens: 256, outputTokens: 32, now: 0)))
        }
        #expect(server.busy(now: 0) == 2)
        #expect(server.waiting(now: 0) == 1)
        #expect(!server.hasRoom(now: 0))
        #expect(server.estimatedFinish(model: "llama-2-13b", inputTokens: 256, outputTokens: 32, now: 0) == nil)
        #expect(server.admit(requestID: "d", model: "llama-2-13b", inputTokens: 256, outputTokens: 32, now: 0) == .rejected)
        #expect(server.job("d") == nil)
        // Just before the first two finish, still full; at their finish, c runs and there is room.
        #expect(server.admit(requestID: "d", model: "llama-2-13b", inputTokens: 256, outputTokens: 32, now: t * 0.999) == .rejected)
        #expect(server.busy(now: t) == 1 && server.waiting(now: t) == 0 && server.hasRoom(now: t))
        // Slots free at [2t, t]: the estimate starts on the one free at t.
        let estimate = try #require(server.estimatedFinish(model: "llama-2-13b", inputTokens: 256, outputTokens: 32, now: t))
        #expect(isRelativelyClose(estimate, 2 * t, 1e-12))
        let d = try #require(admittedJob(server.admit(requestID: "d", model: "llama-2-13b", inputTokens: 256, outputTokens: 32, now: t)))
        #expect(d.finishAt == estimate && d.queueWait == 0)
        // After everything finished the server is idle.
        #expect(server.busy(now: 10 * t) == 0 && server.waiting(now: 10 * t) == 0 && server.hasRoom(now: 10 * t))
    }

    @Test func zeroQueueAdmitsOnlyOnAFreeSlot() throws {
        var server = ComputeServer(device: rtx, slots: 1, queueCapacity: 0)
        let t = serviceTime()
        #expect(server.hasRoom(now: 0))
        _ = try #require(admittedJob(server.admit(requestID: "a", model: "llama-2-13b", inputTokens: 256, outputTokens: 32, now: 0)))
        #expect(!server.hasRoom(now: t / 2))
        #expect(server.admit(requestID: "b", model: "llama-2-13b", inputTokens: 256, outputTokens: 32, now: t / 2) == .rejected)
        let b = try #require(admittedJob(server.admit(requestID: "b", model: "llama-2-13b", inputTokens: 256, outputTokens: 32, now: t)))
        #expect(b.startAt == t && b.queueWait == 0)
    }

    @Test func duplicateRequestIsTheSameJobNotComputedTwice() throws {
        var server = ComputeServer(device: rtx, slots: 1, queueCapacity: 4)
        let a = try #require(admittedJob(server.admit(requestID: "a", model: "llama-2-13b", inputTokens: 256, outputTokens: 32, now: 0)))
        // A re-send, even with other sizes and later: the same job.
        #expect(server.admit(requestID: "a", model: "llama-2-13b", inputTokens: 256, outputTokens: 32, now: 0.1) == .duplicate(a))
        #expect(server.admit(requestID: "a", model: "llama-3-8b", inputTokens: 9, outputTokens: 9, now: 0.15) == .duplicate(a))
        #expect(a.finishAt > 0.2)
        #expect(server.waiting(now: 0.15) == 0 && server.busy(now: 0.15) == 1)
        // The slot schedule did not move: the next request starts when a finishes.
        let b = try #require(admittedJob(server.admit(requestID: "b", model: "llama-2-13b", inputTokens: 256, outputTokens: 32, now: 0.2)))
        #expect(b.startAt == a.finishAt)
        // Still a duplicate after it finished.
        #expect(server.admit(requestID: "a", model: "llama-2-13b", inputTokens: 256, outputTokens: 32, now: b.finishAt + 1) == .duplicate(a))
    }

    @Test func unknownModelOrModelThatDoesNotFitIsUnsupported() throws {
        var server = ComputeServer(device: rtx, slots: 1, queueCapacity: 1)
        guard case .unsupported(let why) = server.admit(requestID: "x", model: "gpt-9", inputTokens: 1, outputTokens: 1, now: 0) else {
            Issue.record("expected unsupported"); return
        }
        #expect(why.contains("unknown model") && why.contains("gpt-9"))
        // Llama-2-70B 4-bit is 34.5 GB: more than the 24 GB of a 4090.
        guard case .unsupported(let why2) = server.admit(requestID: "y", model: "llama-2-70b", inputTokens: 1, outputTokens: 1, now: 0) else {
            Issue.record("expected unsupported"); return
        }
        #expect(why2.contains("does not fit") && why2.contains("rtx-4090"))
        #expect(server.job("x") == nil && server.job("y") == nil)
        #expect(server.estimatedFinish(model: "gpt-9", inputTokens: 1, outputTokens: 1, now: 0) == nil)
        #expect(server.estimatedFinish(model: "llama-2-70b", inputTokens: 1, outputTokens: 1, now: 0) == nil)
        #expect(server.busy(now: 0) == 0 && server.hasRoom(now: 0))
    }

    @Test func estimatedFinishMatchesTheAdmission() throws {
        var server = ComputeServer(device: rtx, slots: 1, queueCapacity: 3)
        var previous = 0.0
        for i in 0..<4 {
            let estimate = try #require(server.estimatedFinish(model: "llama-3-8b", inputTokens: 128, outputTokens: 16, now: 0.25))
            let job = try #require(admittedJob(server.admit(requestID: "r\(i)", model: "llama-3-8b", inputTokens: 128, outputTokens: 16, now: 0.25)))
            #expect(job.finishAt == estimate)
            #expect(job.startAt == max(0.25, previous))
            previous = job.finishAt
        }
        #expect(server.waiting(now: 0.25) == 3 && server.busy(now: 0.25) == 1)
        #expect(server.estimatedFinish(model: "llama-3-8b", inputTokens: 128, outputTokens: 16, now: 0.25) == nil)
    }

    @Test func deduplicationMemoryIsBounded() throws {
        // More than 256 jobs, the oldest finished over 60 s ago: they are forgotten, the recent ones are not.
        var server = ComputeServer(device: rtx, slots: 1, queueCapacity: 1)
        for i in 0..<300 {
            _ = try #require(admittedJob(server.admit(requestID: "r\(i)", model: "llama-3-8b", inputTokens: 16, outputTokens: 1, now: Double(i))))
        }
        _ = server.admit(requestID: "late", model: "llama-3-8b", inputTokens: 16, outputTokens: 1, now: 400)
        #expect(server.job("r0") == nil)
        #expect(server.job("r299") != nil)
        #expect(server.job("late") != nil)
    }
}
