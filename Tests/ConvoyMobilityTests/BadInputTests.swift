import ConvoyCore
import ConvoyMobility
import Foundation
import Testing

/// A broken trace file and the error it must produce.
struct BadInput: Sendable, CustomTestStringConvertible {
    var name: String
    var fileName: String
    var content: String
    /// Expected 1-based line, or nil when the error names no line.
    var line: Int?
    var field: String?
    /// Text the message must contain.
    var message: String
    /// How the trace is loaded (a coordinate frame forced, …).
    var options = TraceLoadOptions()

    var testDescription: String { name }
}

/// The well-formed prefix most XML cases share.
private let head = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<fcd-export>\n"

let badInputs: [BadInput] = [
    // Whole-file problems.
    BadInput(name: "empty file", fileName: "empty.xml", content: "", line: nil, field: nil, message: "empty file"),
    BadInput(name: "whitespace only", fileName: "blank.csv", content: " \n\n\t\n", line: nil, field: nil, message: "empty file"),
    BadInput(name: "binary garbage", fileName: "trace.bin", content: "\u{01}\u{02}\u{03}PK\n", line: 1, field: nil, message: "unknown trace format"),
    BadInput(name: "unknown text format", fileName: "trace.txt", content: "hello world\n1 2 3\n", line: 1, field: nil, message: "unknown trace format"),
    BadInput(name: "CSV with other columns", fileName: "other.csv", content: "t,vehicle,px,py\n0,a,1,2\n", line: 1, field: nil, message: "unknown trace format"),
    BadInput(name: "unknown XML root", fileName: "routes.xml", content: "<?xml version=\"1.0\"?>\n<routes>\n</routes>\n", line: 2, field: nil, message: "<routes>"),
    BadInput(name: "no vehicles at all", fileName: "none.xml", content: head + "<timestep time=\"0\"/>\n<timestep time=\"1\"><person id=\"p\" x=\"0\" y=\"0\"/></timestep>\n</fcd-export>\n", line: nil, field: nil, message: "no vehicle samples"),

    // Malformed or truncated XML.
    BadInput(name: "truncated mid-element", fileName: "cut.xml", content: head + "<timestep time=\"0.00\">\n<vehicle id=\"a\" x=\"1\" y=\"2\"/>\n<vehicle id=\"b\" x=\"3", line: 5, field: nil, message: "truncated"),
    BadInput(name: "truncated after a timestep", fileName: "cut2.xml", content: head + "<timestep time=\"0.00\">\n<vehicle id=\"a\" x=\"1\" y=\"2\"/>\n</timestep>\n", line: 5, field: nil, message: "truncated"),
    BadInput(name: "mismatched end tag", fileName: "mismatch.xml", content: head + "<timestep time=\"0.00\">\n<vehicle id=\"a\" x=\"1\" y=\"2\"/>\n</timstep>\n</fcd-export>\n", line: 5, field: nil, message: "malformed XML"),
    BadInput(name: "unquoted attribute", fileName: "unquoted.xml", content: head + "<timestep time=0.00>\n</timestep>\n</fcd-export>\n", line: 3, field: nil, message: "malformed XML"),

    // Attributes.
    BadInput(name: "missing x", fileName: "nox.xml", content: head + "<timestep time=\"0.00\">\n<vehicle id=\"a\" y=\"2\"/>\n</timestep>\n</fcd-export>\n", line: 4, field: "x", message: "missing attribute"),
    BadInput(name: "missing y", fileName: "noy.xml", content: head + "<timestep time=\"0.00\">\n<vehicle id=\"a\" x=\"2\"/>\n</timestep>\n</fcd-export>\n", line: 4, field: "y", message: "missing attribute"),
    BadInput(name: "missing id", fileName: "noid.xml", content: head + "<timestep time=\"0.00\">\n<vehicle x=\"1\" y=\"2\"/>\n</timestep>\n</fcd-export>\n", line: 4, field: "id", message: "missing attribute"),
    BadInput(name: "empty id", fileName: "emptyid.xml", content: head + "<timestep time=\"0.00\">\n<vehicle id=\"\" x=\"1\" y=\"2\"/>\n</timestep>\n</fcd-export>\n", line: 4, field: "id", message: "empty vehicle id"),
    BadInput(name: "non-numeric x", fileName: "badx.xml", content: head + "<timestep time=\"0.00\">\n<vehicle id=\"a\" x=\"12,5\" y=\"2\"/>\n</timestep>\n</fcd-export>\n", line: 4, field: "x", message: "expected a coordinate in metres, found \"12,5\""),
    BadInput(name: "infinite y", fileName: "infy.xml", content: head + "<timestep time=\"0.00\">\n<vehicle id=\"a\" x=\"1\" y=\"inf\"/>\n</timestep>\n</fcd-export>\n", line: 4, field: "y", message: "expected a coordinate"),
    BadInput(name: "non-numeric speed", fileName: "badspeed.xml", content: head + "<timestep time=\"0.00\">\n<vehicle id=\"a\" x=\"1\" y=\"2\" speed=\"fast\"/>\n</timestep>\n</fcd-export>\n", line: 4, field: "speed", message: "expected a number"),
    BadInput(name: "missing timestep time", fileName: "notime.xml", content: head + "<timestep>\n</timestep>\n</fcd-export>\n", line: 3, field: "time", message: "missing attribute"),
    BadInput(name: "non-numeric timestep time", fileName: "badtime.xml", content: head + "<timestep time=\"noon\">\n</timestep>\n</fcd-export>\n", line: 3, field: "time", message: "expected a number of seconds"),
    BadInput(name: "vehicle outside a timestep", fileName: "outside.xml", content: head + "<vehicle id=\"a\" x=\"1\" y=\"2\"/>\n</fcd-export>\n", line: 3, field: nil, message: "outside a <timestep>"),

    // Time order and duplicates.
    BadInput(name: "time going backwards", fileName: "back.xml", content: head + "<timestep time=\"1.00\"/>\n<timestep time=\"2.00\"/>\n<timestep time=\"1.50\"/>\n</fcd-export>\n", line: 5, field: "time", message: "goes backwards"),
    BadInput(name: "time repeated", fileName: "repeat.xml", content: head + "<timestep time=\"1.00\"/>\n<timestep time=\"1.00\"/>\n</fcd-export>\n", line: 4, field: "time", message: "repeats"),
    BadInput(name: "vehicle twice in a timestep", fileName: "twice.xml", content: head + "<timestep time=\"0.00\">\n<vehicle id=\"a\" x=\"1\" y=\"2\"/>\n<vehicle id=\"b\" x=\"1\" y=\"2\"/>\n<vehicle id=\"a\" x=\"3\" y=\"4\"/>\n</timestep>\n</fcd-export>\n", line: 6, field: "id", message: "appears twice"),

    // CSV.
    BadInput(name: "CSV wrong field count", fileName: "count.csv", content: "time,id,x,y\n0,a,1,2\n1,a,1\n", line: 3, field: nil, message: "expected 4 fields"),
    BadInput(name: "CSV non-numeric x", fileName: "x.csv", content: "time,id,x,y\n0,a,1,2\n1,a,east,2\n", line: 3, field: "x", message: "expected a coordinate in metres, found \"east\""),
    BadInput(name: "CSV nan y", fileName: "nan.csv", content: "time,id,x,y\n0,a,1,nan\n", line: 2, field: "y", message: "expected a coordinate"),
    BadInput(name: "CSV non-numeric angle", fileName: "angle.csv", content: "time,id,x,y,speed,angle\n0,a,1,2,3,north\n", line: 2, field: "angle", message: "expected a number"),
    BadInput(name: "CSV non-numeric time", fileName: "t.csv", content: "time,id,x,y\nzero,a,1,2\n", line: 2, field: "time", message: "expected a number of seconds"),
    BadInput(name: "CSV time going backwards", fileName: "back.csv", content: "time,id,x,y\n0,a,0,0\n0,b,0,0\n2,a,1,1\n1,a,2,2\n", line: 5, field: "time", message: "goes backwards"),
    BadInput(name: "CSV vehicle twice at one time", fileName: "twice.csv", content: "time,id,x,y\n0,\"a,b\",0,0\n0,\"a,b\",1,1\n", line: 3, field: "id", message: "appears twice"),
    BadInput(name: "CSV empty id", fileName: "emptyid.csv", content: "time,id,x,y\n0,,0,0\n", line: 2, field: "id", message: "empty vehicle id"),
    BadInput(name: "CSV unterminated quote", fileName: "quote.csv", content: "time,id,x,y\n0,a,0,0\n1,\"a,1,1\n2,a,2,2\n", line: 3, field: nil, message: "unterminated quoted field"),
    BadInput(name: "CSV text after closing quote", fileName: "after.csv", content: "time,id,x,y\n0,\"a\"b,0,0\n", line: 2, field: nil, message: "after a closing quote"),
    BadInput(name: "CSV header only", fileName: "header.csv", content: "time,id,x,y,speed,angle\n", line: nil, field: nil, message: "no vehicle samples"),
    BadInput(name: "CSV non-numeric lat", fileName: "geo.csv", content: "time,id,lon,lat\n0,a,11.3,44.5\n1,a,11.3,north\n", line: 3, field: "lat", message: "expected degrees"),
    BadInput(name: "SUMO CSV missing column", fileName: "fcd.csv", content: "timestep_time;vehicle_id;vehicle_x\n0;a;1\n", line: 1, field: "y", message: "no column y"),
    BadInput(name: "SUMO CSV non-numeric y", fileName: "fcd2.csv", content: "timestep_time;vehicle_id;vehicle_x;vehicle_y\n0;a;1;2\n1;a;1;x2\n", line: 3, field: "y", message: "expected a coordinate in metres, found \"x2\""),
    BadInput(name: "SUMO CSV time going backwards", fileName: "fcd3.csv", content: "timestep_time;vehicle_id;vehicle_x;vehicle_y\n1;a;1;2\n0;a;1;2\n", line: 3, field: "time", message: "goes backwards"),

    // ns-2.
    BadInput(name: "ns-2 time going backwards", fileName: "back.tcl", content: "$node_(0) set X_ 1\n$node_(0) set Y_ 2\n$ns_ at 2.0 \"$node_(0) setdest 3 4 1\"\n$ns_ at 1.0 \"$node_(0) setdest 5 6 1\"\n", line: 4, field: "time", message: "goes backwards"),
    BadInput(name: "ns-2 non-numeric coordinate", fileName: "x.tcl", content: "$node_(0) set X_ 1\n$node_(0) set Y_ 2\n$ns_ at 2.0 \"$node_(0) setdest 3 four 1\"\n", line: 3, field: "y", message: "expected a coordinate in metres, found \"four\""),
    BadInput(name: "ns-2 missing initial position", fileName: "noy.tcl", content: "$node_(0) set X_ 1\n$ns_ at 2.0 \"$node_(0) setdest 3 4 1\"\n", line: 2, field: "Y_", message: "before its initial position"),
    BadInput(name: "ns-2 unknown command", fileName: "cmd.tcl", content: "$node_(0) set X_ 1\n$node_(0) set Y_ 2\n$ns_ at 2.0 \"$node_(0) start\"\n", line: 3, field: nil, message: "unknown ns-2 mobility command"),
]

@Suite struct BadInputTests {
    @Test(arguments: badInputs)
    func badInputIsRefusedWithFileLineAndField(_ input: BadInput) throws {
        try withTemporaryFile(input.fileName, input.content) { path in
            let error = try #require(loadError(path))
            #expect(error.file == path)
            #expect(error.line == input.line, "\(error)")
            #expect(error.field == input.field, "\(error)")
            #expect(error.message.contains(input.message), "\(error)")
        }
    }

    @Test func missingFile() throws {
        try withTemporaryDirectory { dir in
            let path = dir.appendingPathComponent("nope.xml").path
            let error = try #require(loadError(path))
            #expect(error.file == path)
            #expect(error.message.contains("cannot open"))
        }
    }

    @Test func truncatedRealSample() throws {
        // The real SUMO sample cut in the middle of the last timestep.
        let full = try Data(contentsOf: URL(fileURLWithPath: fixture("fcd_xy.xml")))
        try withTemporaryFile("fcd_xy_cut.xml", full.prefix(full.count - 200)) { path in
            let error = try #require(loadError(path))
            #expect(error.message.contains("truncated"), "\(error)")
            #expect(error.line != nil)
        }
    }

    @Test func errorDescriptionNamesFileLineAndField() {
        let error = InputError(file: "t.xml", line: 4, field: "x", "missing attribute; expected a coordinate in metres")
        #expect(error.description == "t.xml:4: field 'x': missing attribute; expected a coordinate in metres")
    }
}
