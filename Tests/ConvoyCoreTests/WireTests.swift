import ConvoyCore
import Foundation
import Testing
@testable import ConvoyWire

@Suite("Wire envelope and payloads")
struct WireTests {
    /// The example of PROTOCOL.md, byte for byte.
    static let beaconGolden: [UInt8] = [
        0x43, 0x56, 0x03, 0x01, 0x01, 0x05, 0x72, 0x73, 0x75, 0x2d, 0x31, 0x00, 0x00, 0x00, 0x01,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x26, 0x25, 0xa0,
        0x40, 0x59, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x40, 0x69, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x09, 0x01, 0x00, 0x02, 0x00, 0x01, 0x00, 0x01, 0x00, 0x02,
    ]

    static let beaconEnvelope = Envelope(
        kind: .beacon, sender: "rsu-1", incarnation: 1, sequence: 7, sentAt: 2.5, position: Position(x: 100, y: 200),
        payload: Beacon(role: .rsu, activeVehicles: 2, queued: 1, busySlots: 1, slots: 2).encoded())

    @Test func beaconEncodesToTheDocumentedBytes() {
        #expect(Self.beaconEnvelope.encoded() == Self.beaconGolden)
    }

    @Test func protocolDocumentShowsTheSameBytes() throws {
        let doc = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../Sources/ConvoyWire/PROTOCOL.md").standardizedFileURL
        let text = try String(contentsOf: doc, encoding: .utf8)
        let hex = Self.beaconGolden.map { String(format: "%02x", $0) }.joined(separator: " ")
        let documented = text.components(separatedBy: "```").dropFirst().first { $0.contains("43 56") } ?? ""
        #expect(documented.split(whereSeparator: \.isWhitespace).joined(separator: " ") == hex)
    }

    @Test func goldenBytesDecode() throws {
        let envelope = try Envelope(decoding: Self.beaconGolden)
        #expect(envelope == Self.beaconEnvelope)
        let beacon = try Beacon.decode(envelope.payload)
        #expect(beacon == Beacon(role: .rsu, activeVehicles: 2, queued: 1, busySlots: 1, slots: 2))
    }

    @Test func requestAndReplyRoundTrip() throws {
        let request = InferenceRequest(requestID: "véh 1,\"x\"/3", attempt: 2, vehicleID: "véh 1,\"x\"", model: "llama-3-8b",
                                       inputTokens: 256, outputTokens: 32, payloadBytes: 20_000, deadline: 12.25,
                                       route: ["rsu-1", "edge-1"])
        #expect(try InferenceRequest.decode(request.encoded()) == request)
        let reply = InferenceReply(requestID: "v/1", attempt: 3, status: .rejected, servedBy: "edge-2", route: ["rsu-1", "edge-2"],
                                   queueWait: 0.5, computeTime: 1.25, resultBytes: 2000, detail: "full")
        #expect(try InferenceReply.decode(reply.encoded()) == reply)
        let envelope = Envelope(kind: .request, sender: "véh 1", incarnation: 1, sequence: 1, sentAt: -0.000001,
                                position: nil, payload: request.encoded())
        #expect(try Envelope(decoding: envelope.encoded()) == envelope)
        let timed = Envelope(kind: .reply, sender: "rsu-1", incarnation: 2, sequence: 9, sentAt: 3.25,
                             position: Position(x: 1, y: 2), deliverAt: 3.287654, payload: reply.encoded())
        let bytes = timed.encoded()
        #expect(bytes[4] == 3)
        #expect(try Envelope(decoding: bytes) == timed)
    }

    /// Real prompts and answers travel as text fields (u32 length + UTF-8), up to 256 KiB.
    @Test func promptsAndAnswersRoundTrip() throws {
        let prompt = "Describe the junction ahead: \"two lanes\", a cyclist, ünïcode 🚗\n"
        let request = InferenceRequest(requestID: "veh1/1", attempt: 1, vehicleID: "veh1", model: "smollm2-135m", inputTokens: 64,
                                       outputTokens: 16, payloadBytes: 1_000, deadline: 5, prompt: prompt)
        #expect(try InferenceRequest.decode(request.encoded()) == request)
        #expect(request.linkBytes == 1_000 + prompt.utf8.count)
        let reply = InferenceReply(requestID: "veh1/1", attempt: 1, status: .completed, servedBy: "edge-1", route: ["rsu-1", "edge-1"],
                                   resultBytes: 11, answer: "A cyclist.")
        #expect(try InferenceReply.decode(reply.encoded()) == reply)
        #expect(reply.virtualResultBytes == 0)
        #expect(InferenceReply(requestID: "v/1", attempt: 1, status: .completed, servedBy: "x", route: [], resultBytes: 500)
            .virtualResultBytes == 500)
        let shared = SharedResult(requestID: "veh1/1", key: "k", computedAt: 1, servedBy: "edge-1", resultBytes: 10, answer: "A cyclist.")
        #expect(try SharedResult.decode(shared.encoded()) == shared)
        // Text beyond the limit is cut at a character boundary: it still decodes.
        let long = String(repeating: "é", count: ByteReader.maxText)  // 2 bytes each
        let cut = try InferenceReply.decode(InferenceReply(requestID: "v/1", attempt: 1, status: .completed, servedBy: "x", route: [],
                                                           answer: "a" + long).encoded())
        #expect(cut.answer.utf8.count == ByteReader.maxText - 1 && cut.answer.hasPrefix("aé"))
        // A text length beyond the limit is refused before reading it.
        var w = ByteWriter()
        w.u32(UInt32(ByteReader.maxText + 1))
        var r = ByteReader(w.bytes)
        #expect(throws: DecodeError.self) { _ = try r.text() }
    }

    @Test func cancelSharedResultAndV2VBeaconRoundTrip() throws {
        let cancel = InferenceCancel(requestID: "veh-1/4", attempt: 2)
        #expect(try InferenceCancel.decode(cancel.encoded()) == cancel)
        #expect(cancel.encoded() == [0, 7] + Array("veh-1/4".utf8) + [0, 2])
        let shared = SharedResult(requestID: "veh-1/4", key: "hazard@3,-2", computedAt: 7.5, servedBy: "edge-1", resultBytes: 1500)
        #expect(try SharedResult.decode(shared.encoded()) == shared)
        let beacon = V2VBeacon(speed: 13.9, heading: 90, freeSlots: 1, uplinkRate: 42e6)
        #expect(try V2VBeacon.decode(beacon.encoded()) == beacon)
        #expect(beacon.encoded().count == 25)
        #expect(MessageKind(rawValue: 9) == .cancel && MessageKind(rawValue: 10) == .sharedResult)
        // A V2V beacon of the old 16-byte layout is refused, not misread.
        #expect(throws: DecodeError.self) { try V2VBeacon.decode(Array(beacon.encoded().prefix(16))) }
    }

    @Test func everyTruncationIsRejectedNotCrashed() {
        let frame = Self.beaconGolden
        for length in 0..<frame.count {
            #expect(throws: DecodeError.self) { try Envelope(decoding: Array(frame.prefix(length))) }
        }
        // Payload truncations inside a well-formed envelope.
        let reply = InferenceReply(requestID: "v/1", attempt: 1, status: .completed, servedBy: "rsu-1", route: ["rsu-1"]).encoded()
        for length in 0..<reply.count {
            #expect(throws: DecodeError.self) { try InferenceReply.decode(Array(reply.prefix(length))) }
        }
    }

    @Test func malformedFramesAreClassified() {
        var bad = Self.beaconGolden
        bad[0] = 0x00
        #expect(throws: DecodeError.badMagic) { try Envelope(decoding: bad) }
        bad = Self.beaconGolden
        bad[2] = 9
        #expect(throws: DecodeError.unsupportedVersion(9)) { try Envelope(decoding: bad) }
        // A frame of protocol version 1 (before prompts and answers were carried) is refused, not misread.
        bad[2] = 1
        #expect(throws: DecodeError.unsupportedVersion(1)) { try Envelope(decoding: bad) }
        bad = Self.beaconGolden
        bad[3] = 200
        #expect(throws: DecodeError.unknownKind(200)) { try Envelope(decoding: bad) }
        #expect(throws: DecodeError.self) { try Envelope(decoding: Self.beaconGolden + [0]) }
        #expect(throws: DecodeError.oversized(Envelope.maxFrameBytes + 1)) {
            try Envelope(decoding: [UInt8](repeating: 0, count: Envelope.maxFrameBytes + 1))
        }
        bad = Self.beaconGolden
        bad[4] = 0x80
        #expect(throws: DecodeError.invalid("unknown flags 128")) { try Envelope(decoding: bad) }
        bad[4] = 0x03  // says a delivery time follows, but none does
        #expect(throws: DecodeError.self) { try Envelope(decoding: bad) }
    }

    @Test func randomGarbageNeverCrashes() {
        var rng = SeededGenerator(seed: 42)
        for _ in 0..<5_000 {
            var frame = Self.beaconGolden
            let flips = Int(rng.next() % 4) + 1
            for _ in 0..<flips { frame[Int(rng.next() % UInt64(frame.count))] = UInt8(truncatingIfNeeded: rng.next()) }
            if let envelope = try? Envelope(decoding: frame) { _ = try? Beacon.decode(envelope.payload) }
            let garbage = (0..<Int(rng.next() % 80)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            _ = try? Envelope(decoding: garbage)
            _ = try? InferenceRequest.decode(garbage)
        }
    }

    @Test func recordBatchUsesColumnNamesAsKeys() throws {
        let batch = RecordBatch(requests: [RequestRecord(requestID: "v/1", vehicleID: "v", createdAt: 1, deadlineAt: 6, model: "m",
                                                         inputTokens: 1, outputTokens: 2, payloadBytes: 3)])
        let json = String(decoding: try JSONEncoder().encode(batch), as: UTF8.self)
        #expect(json.contains("\"request_id\":\"v\\/1\"") || json.contains("\"request_id\":\"v/1\""))
        #expect(json.contains("\"vehicle_id\""))
        #expect(try JSONDecoder().decode(RecordBatch.self, from: Data(json.utf8)) == batch)
    }
}

@Suite("Emulated time and seeded randomness")
struct CoreTests {
    @Test func clockConvertsBothWays() {
        let clock = EmulationClock(epoch: 1000, speed: 0.5)
        #expect(clock.emulated(atWall: 1010) == 5)
        #expect(clock.wall(atEmulated: 5) == 1010)
        #expect(clock.wallDuration(ofEmulated: 1) == 2)
    }

    @Test func seededGeneratorRepeatsAndDiffers() {
        var a = SeededGenerator(seed: 7, label: "rsu-1"), b = SeededGenerator(seed: 7, label: "rsu-1")
        var c = SeededGenerator(seed: 7, label: "rsu-2")
        let xs = (0..<5).map { _ in a.next() }
        #expect(xs == (0..<5).map { _ in b.next() })
        #expect(xs != (0..<5).map { _ in c.next() })
        var d = SeededGenerator(seed: 1)
        let mean = (0..<20_000).map { _ in d.exponential(mean: 2) }.reduce(0, +) / 20_000
        #expect(abs(mean - 2) < 0.1)
    }

    @Test func inputErrorsNameFileLineAndField() {
        #expect("\(InputError(file: "a.yaml", line: 3, field: "rsus[0].x", "expected a number"))"
            == "a.yaml:3: field 'rsus[0].x': expected a number")
    }
}

@Suite struct RecordOwnershipTests {
    @Test func aBatchKeepsOnlyItsSendersRows() {
        var batch = RecordBatch()
        batch.requests = [RequestRecord(requestID: "car/1", vehicleID: "car", createdAt: 0, deadlineAt: 1, model: "m", inputTokens: 1,
                                        outputTokens: 1, payloadBytes: 1),
                          RequestRecord(requestID: "victim/1", vehicleID: "victim", createdAt: 0, deadlineAt: 1, model: "m", inputTokens: 1,
                                        outputTokens: 1, payloadBytes: 1),
                          RequestRecord(requestID: "victim/2", vehicleID: "car", createdAt: 0, deadlineAt: 1, model: "m", inputTokens: 1,
                                        outputTokens: 1, payloadBytes: 1)]
        batch.counters = [CounterRecord(nodeID: "car", name: "x", value: 1), CounterRecord(nodeID: "rsu-1", name: "x", value: 99)]
        batch.detections = [DetectionRecord(observer: "rsu-1", peer: "edge-1", state: "dead", at: 1)]
        let owned = batch.owned(by: "car")
        #expect(owned.requests.map(\.requestID) == ["car/1"])
        #expect(owned.counters.map(\.nodeID) == ["car"])
        #expect(owned.detections.isEmpty)
        #expect(batch.rowCount - owned.rowCount == 4)
    }

    @Test func theSenderIsReadFromTheHeaderAlone() {
        let frame = Envelope(kind: .beacon, sender: "rsu-7", incarnation: 2, sequence: 1, sentAt: 3, payload: [1, 2, 3]).encoded()
        #expect(Envelope.sender(ofFrame: frame) == "rsu-7")
        #expect(Envelope.sender(ofFrame: Array(frame.prefix(8))) == nil)
        #expect(Envelope.sender(ofFrame: [0x43, 0x56, 1, 1, 0, 0]) == nil)
        #expect(Envelope.sender(ofFrame: Array("not convoy".utf8)) == nil)
    }
}
