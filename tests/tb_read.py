#!/usr/bin/env python3
"""tb_read.py DIR: prints the scalars of the TensorBoard event files in DIR
as "tag<TAB>step<TAB>value" lines, read with the Python standard library
alone (an implementation independent of src/core/tensorboard.c): TFRecord
framing with both masked CRC-32C checked, then the Event and Summary
protobufs decoded field by field. Exits 1 naming the file and offset on a
bad checksum or a malformed record. `--tensorboard` reads the same with
TensorBoard's own event_accumulator instead (pip install tensorboard)."""
import glob
import os
import struct
import sys


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def masked(crc):
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def varint(b, i):
    shift = v = 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7F) << shift
        shift += 7
        if not c & 0x80:
            return v, i


def fields(b):
    """(field, wire type, value) of a protobuf message"""
    i = 0
    while i < len(b):
        key, i = varint(b, i)
        f, wt = key >> 3, key & 7
        if wt == 0:
            v, i = varint(b, i)
        elif wt == 1:
            v = b[i:i + 8]
            i += 8
        elif wt == 5:
            v = b[i:i + 4]
            i += 4
        elif wt == 2:
            n, i = varint(b, i)
            v = b[i:i + n]
            i += n
        else:
            raise ValueError("wire type %d" % wt)
        yield f, wt, v


def read(path):
    data = open(path, "rb").read()
    off, out = 0, []
    while off < len(data):
        if off + 12 > len(data):
            sys.exit("%s: truncated record header at %d" % (path, off))
        (n,) = struct.unpack_from("<Q", data, off)
        (lc,) = struct.unpack_from("<I", data, off + 8)
        if masked(crc32c(data[off:off + 8])) != lc:
            sys.exit("%s: bad length checksum at %d" % (path, off))
        body = data[off + 12:off + 12 + n]
        (dc,) = struct.unpack_from("<I", data, off + 12 + n)
        if masked(crc32c(body)) != dc:
            sys.exit("%s: bad data checksum at %d" % (path, off))
        off += 12 + n + 4
        step, summary = 0, None
        for f, wt, v in fields(body):
            if f == 2 and wt == 0:
                step = v
            elif f == 5 and wt == 2:
                summary = v
        if summary is None:
            continue
        for f, wt, v in fields(summary):
            if f != 1:
                continue
            tag, value = None, None
            for g, gwt, gv in fields(v):
                if g == 1:
                    tag = gv.decode()
                elif g == 2 and gwt == 5:
                    (value,) = struct.unpack("<f", gv)
            out.append((tag, step, value))
    return out


def main():
    args = [a for a in sys.argv[1:] if a != "--tensorboard"]
    files = sorted(glob.glob(os.path.join(args[0], "events.out.tfevents.*")))
    if not files:
        sys.exit("no event file in %s" % args[0])
    assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
    if "--tensorboard" in sys.argv:
        from tensorboard.backend.event_processing import event_accumulator
        ea = event_accumulator.EventAccumulator(args[0])
        ea.Reload()
        rows = [(t, e.step, e.value) for t in ea.Tags()["scalars"] for e in ea.Scalars(t)]
    else:
        rows = [r for p in files for r in read(p)]
    for tag, step, value in sorted(rows):
        print("%s\t%d\t%.9g" % (tag, step, value))


if __name__ == "__main__":
    main()
