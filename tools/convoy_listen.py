"""A minimal Convoy protocol client in Python, written from Sources/ConvoyWire/PROTOCOL.md alone.

Subscribes to the broadcast bus of a running launch and prints the beacons it sees (decoded),
one line each. Usage: tools/convoy-listen RUN_DIR [--client NAME] [--seconds N] [--topic PREFIX]

A run uses CurveZMQ unless it was launched with --no-curve: then this client needs a key, which
`convoy launch --allow-client NAME` writes to RUN_DIR/keys/client-NAME.json (PROTOCOL.md,
"Security"); pass --client NAME.
"""
import argparse
import json
import os
import struct
import sys
import time

import zmq

KINDS = {1: "beacon", 2: "v2v_beacon", 3: "request", 4: "reply", 6: "record", 7: "control", 8: "control_reply"}
ROLES = {0: "vehicle", 1: "rsu", 2: "edge", 3: "cloud"}


class Malformed(Exception):
    pass


def decode_envelope(frame: bytes) -> dict:
    """Decodes one envelope (PROTOCOL.md, "Envelope"); raises Malformed for anything else."""
    if len(frame) > 1 << 20:
        raise Malformed("oversized")
    try:
        if frame[0:2] != b"CV":
            raise Malformed("bad magic")
        version, kind, flags, length = frame[2], frame[3], frame[4], frame[5]
        if version != 3:
            raise Malformed(f"version {version}")
        if kind not in KINDS or flags & ~3:
            raise Malformed("unknown kind or flags")
        offset = 6
        sender = frame[offset:offset + length].decode("utf-8")
        offset += length
        incarnation, sequence, sent_us = struct.unpack_from(">IQq", frame, offset)
        offset += 20
        position = None
        if flags & 1:
            position = struct.unpack_from(">dd", frame, offset)
            offset += 16
        deliver_at = None
        if flags & 2:
            (deliver_us,) = struct.unpack_from(">q", frame, offset)
            deliver_at = deliver_us / 1e6
            offset += 8
        (payload_length,) = struct.unpack_from(">I", frame, offset)
        offset += 4
        payload = frame[offset:offset + payload_length]
        if len(payload) != payload_length or offset + payload_length != len(frame):
            raise Malformed("length mismatch")
    except (IndexError, struct.error, UnicodeDecodeError) as error:
        raise Malformed(str(error))
    return {"kind": KINDS[kind], "sender": sender, "incarnation": incarnation, "sequence": sequence,
            "sent_at": sent_us / 1e6, "position": position, "deliver_at": deliver_at, "payload": payload}


def decode_payload(kind: str, payload: bytes) -> dict:
    if kind == "beacon":
        role, active, queued, busy, slots = struct.unpack(">BHHHH", payload)
        return {"role": ROLES[role], "active_vehicles": active, "queued": queued, "busy_slots": busy, "slots": slots}
    if kind == "v2v_beacon":
        speed, heading = struct.unpack(">dd", payload)
        return {"speed": speed, "heading": heading}
    return {"bytes": len(payload)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--topic", default="beacon/")
    parser.add_argument("--client", help="the NAME given to convoy launch --allow-client (runs with CurveZMQ)")
    args = parser.parse_args()
    try:
        with open(os.path.join(args.run_dir, "run.json")) as f:
            run = json.load(f)
    except OSError as error:
        print(f"convoy-listen: {args.run_dir}: not a Convoy run directory ({error})", file=sys.stderr)
        return 2
    context = zmq.Context()
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    if run.get("security"):
        if not args.client:
            print("convoy-listen: this run uses CurveZMQ: launch it with --allow-client NAME and pass --client NAME",
                  file=sys.stderr)
            return 2
        safe = "".join(c if c.isascii() and (c.isalnum() or c == "-") else "_" for c in args.client)
        path = os.path.join(args.run_dir, "keys", f"client-{safe}.json")
        try:
            with open(path) as f:
                credentials = json.load(f)
        except OSError as error:
            print(f"convoy-listen: {path}: no key for client {args.client!r} ({error})", file=sys.stderr)
            return 2
        sub.curve_publickey = credentials["publicKey"].encode()
        sub.curve_secretkey = credentials["secretKey"].encode()
        sub.curve_serverkey = credentials["launcherKey"].encode()
        endpoint = credentials["busOutbound"]
    else:
        endpoint = f"ipc://{run['socketDirectory']}/bus-out"
    sub.connect(endpoint)
    sub.setsockopt(zmq.SUBSCRIBE, args.topic.encode())
    end = time.time() + args.seconds
    seen = malformed = 0
    while time.time() < end:
        if not sub.poll(100):
            continue
        frames = sub.recv_multipart()
        try:
            envelope = decode_envelope(frames[-1])
        except Malformed:
            malformed += 1
            continue
        seen += 1
        body = decode_payload(envelope["kind"], envelope["payload"])
        print(f"{envelope['sent_at']:9.3f} {frames[0].decode(errors='replace'):<14} {envelope['sender']:<10} "
              f"#{envelope['incarnation']} seq {envelope['sequence']} at {envelope['position']} {body}")
    context.destroy(linger=0)
    print(f"{seen} messages, {malformed} malformed", file=sys.stderr)
    return 0 if seen else 1


if __name__ == "__main__":
    sys.exit(main())
