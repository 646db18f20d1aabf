"""tfevents_check.py RUN_DIR TB_DIR: reads every TensorBoard event file under TB_DIR with a
reader written here from the published record format (uint64 length, masked CRC32C of it,
data, masked CRC32C of the data; the data an Event protobuf of TensorBoard's event.proto and
summary.proto, whose fields used here are declared below), and checks that its scalars are
log.jsonl's update events of that phase and agent: same steps, same tags, values equal as
float32. Exit 0 and a summary line when they agree; 1 with the first difference when not."""
import glob
import json
import os
import struct
import sys

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory


def crc32c(data):
    """Bitwise CRC32C (Castagnoli, reflected 0x82F63B78): independent of bodhi's table."""
    c = 0xFFFFFFFF
    for b in data:
        c ^= b
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    return c ^ 0xFFFFFFFF


def masked(data):
    c = crc32c(data)
    return ((((c >> 15) | (c << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def event_class():
    """tensorboard.Event, Summary and Summary.Value with TensorBoard's field numbers."""
    F = descriptor_pb2.FieldDescriptorProto
    fp = descriptor_pb2.FileDescriptorProto(name="tb_check.proto", package="tbcheck", syntax="proto3")

    def msg(name, fields):
        m = fp.message_type.add(name=name)
        for fname, num, ftype, label, tname in fields:
            f = m.field.add(name=fname, number=num, type=ftype, label=label)
            if tname:
                f.type_name = tname
        return m

    opt = F.LABEL_OPTIONAL
    msg("Value", [("tag", 1, F.TYPE_STRING, opt, None), ("simple_value", 2, F.TYPE_FLOAT, opt, None)])
    msg("Summary", [("value", 1, F.TYPE_MESSAGE, F.LABEL_REPEATED, ".tbcheck.Value")])
    msg("Event", [("wall_time", 1, F.TYPE_DOUBLE, opt, None), ("step", 2, F.TYPE_INT64, opt, None),
                  ("file_version", 3, F.TYPE_STRING, opt, None),
                  ("summary", 5, F.TYPE_MESSAGE, opt, ".tbcheck.Summary")])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fp)
    return message_factory.MessageFactory(pool).GetPrototype(pool.FindMessageTypeByName("tbcheck.Event"))


def read_records(path):
    with open(path, "rb") as f:
        buf = f.read()
    at, out = 0, []
    while at < len(buf):
        if len(buf) - at < 12:
            sys.exit(f"{path}: {len(buf) - at} trailing bytes, not a record header")
        head = buf[at:at + 8]
        (n,) = struct.unpack("<Q", head)
        (hc,) = struct.unpack("<I", buf[at + 8:at + 12])
        if hc != masked(head):
            sys.exit(f"{path}: record at byte {at}: length CRC {hc:#x} != {masked(head):#x}")
        data = buf[at + 12:at + 12 + n]
        if len(data) != n or len(buf) < at + 16 + n:
            sys.exit(f"{path}: record at byte {at} is cut short")
        (dc,) = struct.unpack("<I", buf[at + 12 + n:at + 16 + n])
        if dc != masked(data):
            sys.exit(f"{path}: record at byte {at}: data CRC {dc:#x} != {masked(data):#x}")
        out.append(data)
        at += 16 + n
    return out


BOOKKEEPING = {"sender", "t", "round", "update", "steps", "minflt", "muscles", "refused_rollouts"}


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def main(run_dir, tb_dir):
    Event = event_class()
    want = {}
    with open(os.path.join(run_dir, "log.jsonl")) as f:
        for line in f:
            o = json.loads(line)
            if o.get("event") != "update":
                continue
            m = {k: v for k, v in o.items() if k not in BOOKKEEPING and isinstance(v, (int, float))
                 and not isinstance(v, bool)}
            if m:
                want.setdefault((o["phase"], o["agent"]), []).append((int(o["steps"]), m))
    files = sorted(glob.glob(os.path.join(tb_dir, "*", "*", "events.out.tfevents.*")))
    if not files:
        sys.exit(f"no event files under {tb_dir}")
    scalars = 0
    for path in files:
        phase, agent = path.split(os.sep)[-3], path.split(os.sep)[-2]
        recs = [Event.FromString(r) for r in read_records(path)]
        if recs[0].file_version != "brain.Event:2":
            sys.exit(f"{path}: first event is not the file version: {recs[0]}")
        got = [(e.step, {v.tag: v.simple_value for v in e.summary.value}) for e in recs[1:]]
        exp = want.get((phase, agent), [])
        if len(got) != len(exp):
            sys.exit(f"{path}: {len(got)} events, log.jsonl has {len(exp)} updates of {phase}/{agent}")
        for (gs, gm), (es, em) in zip(got, exp):
            if gs != es or set(gm) != set(em):
                sys.exit(f"{path}: step {gs} tags {sorted(gm)} != log's step {es} tags {sorted(em)}")
            for k, v in em.items():
                if gm[k] != f32(v):
                    sys.exit(f"{path}: step {gs} {k} = {gm[k]!r}, log.jsonl's as float32 {f32(v)!r}")
            scalars += len(gm)
    print(f"ok: {len(files)} file(s), {scalars} scalars equal to log.jsonl's")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
