import Testing
@testable import ConvoyReasoning

/// The real model server's backend as a pure state machine: calls out as commands, their ends in
/// as results, slots and the bounded queue, time scaling, de-duplication, cancels and the server
/// going down.
@Suite struct ModelServerComputeTests {
    func work(_ id: String, attempt: Int = 1, model: String = "smollm2-135m", prompt: String? = "Hello") -> ComputeWork {
        ComputeWork(requestID: id, attempt: attempt, model: model, inputTokens: 16, outputTokens: 8, prompt: prompt)
    }

    func ended(_ id: String, wall: Double, answer: String = "Hi there.", failure: String? = nil) -> ModelCallResult {
        ModelCallResult(requestID: id, wallSeconds: wall, timeToFirstToken: wall / 4, promptTokens: 5, completionTokens: 4,
                        answer: answer, failure: failure)
    }

    @Test func aCallRunsInASlotAndItsAnswerIsDueAfterTheScaledMeasuredTime() {
        var backend = ModelServerCompute(model: "smollm2-135m", slots: 1, queueCapacity: 1, timeScale: 0.5)
        #expect(backend.admit(work("v/1"), now: 10) == .admitted(wakeAt: nil))
        #expect(backend.takeCommands() == [.run(ModelCall(requestID: "v/1", model: "smollm2-135m", prompt: "Hello", maxTokens: 8))])
        #expect(backend.takeCommands().isEmpty)
        #expect(backend.busy(now: 10) == 1)
        // The call took 2 s of wall time; at scale 0.5 it stands for 1 s: due at 11.
        #expect(backend.finished(ended("v/1", wall: 2), now: 10.4) == 11)
        #expect(backend.completions(now: 10.9).isEmpty)
        let done = backend.completions(now: 11)
        #expect(done.count == 1)
        #expect(done[0].attempts == [1] && done[0].failure == nil)
        #expect(abs(done[0].computeTime - 1) < 1e-9)
        #expect(done[0].output?.answer == "Hi there." && done[0].output?.prompt == "Hello")
        #expect(done[0].output?.late == 0)
        #expect(backend.completions(now: 12).isEmpty, "each job is reported once")
        #expect(backend.accounting.computeMs == 1000)
    }

    @Test func aCallThatEndsAfterItsDueInstantIsAnsweredAtOnceAndRecordedLate() {
        var backend = ModelServerCompute(model: "smollm2-135m", slots: 1, queueCapacity: 0, timeScale: 0.25)
        _ = backend.admit(work("v/1"), now: 0)
        // 4 s of wall at scale 0.25 is due at 1; the call ends at 3 (the emulation runs at real time).
        #expect(backend.finished(ended("v/1", wall: 4), now: 3) == 3)
        let done = backend.completions(now: 3)
        #expect(done.first?.output?.late == 2)
        #expect(done.first?.computeTime == 3)
        #expect(done.first?.output?.compute == 1)
    }

    @Test func slotsAndTheBoundedQueue() {
        var backend = ModelServerCompute(model: "smollm2-135m", slots: 2, queueCapacity: 1)
        #expect(backend.admit(work("a/1"), now: 0) == .admitted(wakeAt: nil))
        #expect(backend.admit(work("b/1"), now: 0) == .admitted(wakeAt: nil))
        #expect(backend.admit(work("c/1"), now: 0) == .admitted(wakeAt: nil))
        #expect(backend.admit(work("d/1"), now: 0) == .rejected)
        #expect(backend.takeCommands().count == 2, "two slots: the third call waits")
        #expect(backend.waiting(now: 0) == 1 && backend.busy(now: 0) == 2)
        _ = backend.finished(ended("a/1", wall: 1), now: 1)
        #expect(backend.takeCommands() == [.run(ModelCall(requestID: "c/1", model: "smollm2-135m", prompt: "Hello", maxTokens: 8))])
        let done = backend.completions(now: 1)
        #expect(done.map(\.requestID) == ["a/1"])
        _ = backend.finished(ended("c/1", wall: 0.5), now: 1.5)
        let c = backend.completions(now: 1.5)
        #expect(c.first?.queueWait == 1, "c waited from 0 to 1 for a slot")
    }

    @Test func otherModelsAreUnsupportedAndEstimatesFollowMeasuredCalls() {
        var backend = ModelServerCompute(model: "smollm2-135m", slots: 1, queueCapacity: 4, initialEstimate: 3)
        #expect(backend.admit(work("v/1", model: "llama-3-8b"), now: 0) == .unsupported("this model server runs smollm2-135m, not llama-3-8b"))
        #expect(backend.estimatedFinish(model: "llama-3-8b", inputTokens: 1, outputTokens: 1, now: 0) == nil)
        #expect(backend.estimatedFinish(model: "smollm2-135m", inputTokens: 1, outputTokens: 1, now: 0) == 3)
        _ = backend.admit(work("v/1"), now: 0)
        _ = backend.finished(ended("v/1", wall: 1), now: 1)
        // Measured: 1 s per call; a free slot → now + 1.
        #expect(backend.estimatedFinish(model: "smollm2-135m", inputTokens: 1, outputTokens: 1, now: 5) == 6)
    }

    @Test func aReSendJoinsTheJobAndADuplicateAfterTheAnswerGetsTheStoredAnswer() {
        var backend = ModelServerCompute(model: "smollm2-135m", slots: 1, queueCapacity: 1)
        _ = backend.admit(work("v/1"), now: 0)
        #expect(backend.admit(work("v/1", attempt: 2), now: 0.5) == .joined(wakeAt: nil))
        #expect(backend.takeCommands().count == 1, "one call for both attempts")
        _ = backend.finished(ended("v/1", wall: 1), now: 1)
        #expect(backend.completions(now: 1).first?.attempts == [1, 2])
        #expect(backend.admit(work("v/1", attempt: 3), now: 2) == .joined(wakeAt: 2))
        #expect(backend.completions(now: 2).first?.output?.answer == "Hi there.")
        #expect(backend.takeCommands().isEmpty, "not computed twice")
    }

    @Test func cancellingTheLastAttemptStopsTheCallAndStartsTheNext() {
        var backend = ModelServerCompute(model: "smollm2-135m", slots: 1, queueCapacity: 2)
        _ = backend.admit(work("a/1"), now: 0)
        _ = backend.admit(work("b/1"), now: 0)
        _ = backend.admit(work("c/1"), now: 0)
        _ = backend.takeCommands()
        let dropped = backend.cancel(requestID: "b/1", attempt: 1, now: 0.1)
        #expect(dropped, "a waiting call is dropped")
        #expect(backend.takeCommands().isEmpty)
        let stopped = backend.cancel(requestID: "a/1", attempt: 1, now: 0.2)
        #expect(stopped)
        #expect(backend.takeCommands() == [.abort(requestID: "a/1"),
                                           .run(ModelCall(requestID: "c/1", model: "smollm2-135m", prompt: "Hello", maxTokens: 8))])
        #expect(backend.finished(ended("a/1", wall: 1), now: 1) == nil, "the end of an aborted call is ignored")
        let again = backend.cancel(requestID: "a/1", attempt: 1, now: 1)
        #expect(!again)
        #expect(backend.accounting.cancelled == 2)
    }

    @Test func aFailedCallAnswersItsAttemptsWithTheReason() {
        var backend = ModelServerCompute(model: "smollm2-135m", slots: 1, queueCapacity: 1)
        _ = backend.admit(work("v/1"), now: 0)
        _ = backend.finished(ended("v/1", wall: 0.01, answer: "", failure: "HTTP 503: busy"), now: 0.01)
        let done = backend.completions(now: 0.01)
        #expect(done.first?.failure == "HTTP 503: busy")
        #expect(backend.accounting.computeMs == 0)
    }

    @Test func theServerGoingDownFailsEverythingInFlightAndAdmitsNothingUntilItIsBack() {
        var backend = ModelServerCompute(model: "smollm2-135m", slots: 1, queueCapacity: 1)
        _ = backend.admit(work("a/1"), now: 0)
        _ = backend.admit(work("b/1"), now: 0)
        _ = backend.takeCommands()
        backend.setServerDown(true, now: 2)
        #expect(backend.takeCommands() == [.abort(requestID: "a/1")])
        let done = backend.completions(now: 2)
        #expect(done.map(\.requestID) == ["a/1", "b/1"])
        #expect(done.allSatisfy { $0.failure == "model server down" })
        #expect(backend.admit(work("c/1"), now: 3) == .unsupported("model server down"))
        #expect(backend.estimatedFinish(model: "smollm2-135m", inputTokens: 1, outputTokens: 1, now: 3) == nil)
        backend.setServerDown(false, now: 4)
        #expect(backend.admit(work("c/1"), now: 4) == .admitted(wakeAt: nil))
    }

    @Test func aRequestWithoutAPromptIsSentFillerOfItsSize() {
        var backend = ModelServerCompute(model: "smollm2-135m", slots: 1, queueCapacity: 1)
        _ = backend.admit(work("v/1", prompt: nil), now: 0)
        guard case .run(let call)? = backend.takeCommands().first else { Issue.record("no call"); return }
        #expect(call.prompt == ModelServerCompute.fillerPrompt(tokens: 16))
        #expect(call.prompt.split(separator: " ").count >= 16)
    }
}

/// `convoy calibrate`'s fit: lines through prefill and decode-step measurements.
@Suite struct MeasuredProfileTests {
    @Test func theFitRecoversTheLinesItWasMadeFrom() throws {
        // prefill = 20 ms + 5 ms/token; decode step = 10 ms + 0.01 ms per context token.
        var samples: [CalibrationSample] = []
        for prompt in [32, 128, 512] {
            for out in [8, 64] {
                let ttft = 0.02 + 0.005 * Double(prompt)
                let step = 0.01 + 0.00001 * (Double(prompt) + Double(out) / 2)
                samples.append(CalibrationSample(promptTokens: prompt, completionTokens: out, timeToFirstToken: ttft,
                                                 decodeSeconds: step * Double(out - 1)))
            }
        }
        let profile = try #require(MeasuredProfile.fit(model: "smollm2-135m", samples: samples))
        #expect(abs(profile.prefillBase - 0.02) < 1e-9 && abs(profile.prefillPerToken - 0.005) < 1e-12)
        #expect(abs(profile.decodeStepBase - 0.01) < 1e-9 && abs(profile.decodeStepPerContextToken - 0.00001) < 1e-12)
        #expect(abs(profile.inferenceTime(inputTokens: 100, outputTokens: 1) - (0.52 + 0.011)) < 1e-9)
    }

    @Test func tooFewDistinctSizesCannotBeFitted() {
        let one = CalibrationSample(promptTokens: 32, completionTokens: 8, timeToFirstToken: 0.1, decodeSeconds: 0.07)
        #expect(MeasuredProfile.fit(model: "m", samples: [one, one]) == nil)
        let noisy = [CalibrationSample(promptTokens: 32, completionTokens: 1, timeToFirstToken: 0.2, decodeSeconds: 0),
                     CalibrationSample(promptTokens: 64, completionTokens: 1, timeToFirstToken: 0.1, decodeSeconds: 0)]
        #expect(MeasuredProfile.fit(model: "m", samples: noisy) == nil, "no call with two tokens: no decode rate")
    }
}
