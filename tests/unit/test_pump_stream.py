"""proc.Stream and proc.pump's relay: the bytes arrive whole and in order, head and tail are exact, whatever
the sizes of the reads (the relay reuses one buffer)."""

from __future__ import annotations

import os
import random
import sys

from vhbackup import proc


def test_stream_keeps_exact_head_and_tail_from_chunks_of_any_size():
    rng = random.Random(7)
    data = rng.randbytes(3 * proc.KEEP + 123)
    stream = proc.Stream()
    pos = 0
    buffer = bytearray(proc.CHUNK)
    while pos < len(data):
        n = min(rng.choice((1, 17, 900, proc.KEEP, 2 * proc.KEEP + 5)), len(data) - pos)
        buffer[:n] = data[pos:pos + n]
        stream.add(memoryview(buffer)[:n])  # the relay's reused buffer: Stream must copy what it keeps
        buffer[:n] = b"\0" * n
        pos += n
    assert stream.bytes == len(data)
    assert stream.head == data[:proc.KEEP] and stream.tail == data[-proc.KEEP:]


def test_stream_shorter_than_keep():
    stream = proc.Stream()
    stream.add(b"abc")
    stream.add(memoryview(b"defg"))
    assert (stream.bytes, stream.head, stream.tail) == (7, b"abcdefg", b"abcdefg")


def test_pump_relays_every_byte_in_order_through_the_reused_buffer(tmp_path):
    rng = random.Random(11)
    data = rng.randbytes(5 * proc.CHUNK + 4321)
    source = tmp_path / "source"
    source.write_bytes(data)
    target = tmp_path / "target"
    # The producer writes in odd sizes with pauses, so reads return partial buffers.
    writer = ("import sys, time, random\n"
              "data = open(sys.argv[1], 'rb').read(); r = random.Random(3); i = 0\n"
              "while i < len(data):\n"
              "    n = r.choice((1, 4096, 65537, 1 << 20)); sys.stdout.buffer.write(data[i:i + n]); i += n\n"
              "    sys.stdout.buffer.flush()\n"
              "    if r.random() < 0.05: time.sleep(0.001)\n")
    seen = []
    pumped = proc.pump(proc.Step((sys.executable, "-c", writer, str(source))),
                       proc.Step(("/bin/sh", "-c", f"cat > {target}")),
                       on_chunk=lambda chunk: seen.append(chunk))
    assert pumped.aborted is None and pumped.producer.ok and pumped.consumer.ok
    assert target.read_bytes() == data
    assert b"".join(seen) == data and all(isinstance(c, bytes) for c in seen)
    assert pumped.stream.bytes == len(data)
    assert pumped.stream.head == data[:proc.KEEP] and pumped.stream.tail == data[-proc.KEEP:]
    assert os.path.getsize(target) == len(data)
