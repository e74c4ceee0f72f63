"""Why pre-extended segments write zeros instead of calling fallocate: the cost of one small
write plus fdatasync into a file that (append) grows with every write, (fallocate) was
posix_fallocate()d 64 MiB ahead, leaving unwritten extents, or (zeros) holds 64 MiB of
written, synced zeros ahead, as keel-log's active segment does (docs/log-format.md,
"Pre-extended segments"). A measurement for BENCHMARKS.md, not a test. The three modes are
alternated round by round, so each round compares them on the same disk.

  sync_modes.py DIR SECONDS ROUNDS [RECORD_BYTES]

DIR must be on the disk to measure. Prints syncs/s and the p50/p99 of write + fdatasync per
mode and round, with the load average.
"""

import os
import sys
import time

AHEAD_BYTES = 64 << 20
ZEROS = b"\0" * (1 << 20)
MODES = ("append", "fallocate", "zeros")


def prepare(fd, mode):
    if mode == "fallocate":
        os.posix_fallocate(fd, 0, AHEAD_BYTES)
    elif mode == "zeros":
        for at in range(0, AHEAD_BYTES, len(ZEROS)):
            os.pwrite(fd, ZEROS, at)
    os.fsync(fd)


def run(directory, mode, seconds, record):
    path = os.path.join(directory, f"sync-modes-{mode}")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        prepare(fd, mode)
        latencies, position = [], 0
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            before = time.perf_counter()
            os.pwrite(fd, record, position)
            os.fdatasync(fd)
            latencies.append(time.perf_counter() - before)
            position += len(record)
        elapsed = time.perf_counter() - started
    finally:
        os.close(fd)
        os.unlink(path)
    latencies.sort()
    return (len(latencies) / elapsed, latencies[len(latencies) // 2] * 1e3,
            latencies[int(len(latencies) * 0.99)] * 1e3)


def main():
    directory, seconds, rounds = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    record = b"x" * (int(sys.argv[4]) if len(sys.argv) > 4 else 100)
    for round_number in range(1, rounds + 1):
        for mode in MODES:
            per_second, p50, p99 = run(directory, mode, seconds, record)
            load = " ".join(open("/proc/loadavg").read().split()[:3])
            print(f"round {round_number}, {len(record)} B, {mode:9}: {per_second:6.0f} syncs/s, "
                  f"p50 {p50:.3f} ms, p99 {p99:.3f} ms, load {load}", flush=True)


if __name__ == "__main__":
    main()
