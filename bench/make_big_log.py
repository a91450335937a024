#!/usr/bin/env python3
"""make_big_log.py: build a big RAW audit.log by repeating a corpus log.

Usage: make_big_log.py CORPUS(.log|.xz) OUT [MIN_MIB=60]

Copy k has every msg=audit(SEC.MS:SERIAL) header shifted by k*time_span seconds and
k*serial_span serials, so events stay distinct (no two share a serial) and the file stays
in time order. Only the header is rewritten (one bytes regex pass per copy): the bodies are
copied verbatim. Prints "COPIES BYTES" on stdout for the caller's sanity checks.
"""
import lzma
import math
import re
import sys

HEADER = re.compile(rb"msg=audit\((\d+)\.(\d+):(\d+)\)")


def main():
    corpus, out = sys.argv[1], sys.argv[2]
    min_bytes = int(float(sys.argv[3]) if len(sys.argv) > 3 else 60) * 2**20
    opener = lzma.open if corpus.endswith(".xz") else open
    with opener(corpus, "rb") as f:
        data = f.read()

    # Spans over all records, daemon records (own serial counter) included: shifting by the
    # full serial range keeps copy k+1's smallest serial above copy k's largest.
    heads = [(int(s), int(n)) for s, _, n in HEADER.findall(data)]
    secs = [s for s, _ in heads]
    serials = [n for _, n in heads]
    time_span = max(secs) - min(secs) + 2  # +2: whole seconds, and a gap between copies
    serial_span = max(serials) - min(serials) + 1
    copies = max(1, math.ceil(min_bytes / len(data)))

    with open(out, "wb") as f:
        f.write(data)  # copy 0: unchanged
        for k in range(1, copies):
            dt, dn = k * time_span, k * serial_span
            f.write(HEADER.sub(
                lambda m: b"msg=audit(%d.%s:%d)" % (int(m[1]) + dt, m[2], int(m[3]) + dn),
                data))
        size = f.tell()
    print(copies, size)


if __name__ == "__main__":
    main()
