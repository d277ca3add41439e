"""The WAL sync helper: a child process that makes the hub's commits durable.

Run as ``python -I -S walsync_child.py <wal file>`` by ``walsync.WalSync``;
standard library only, so it starts in milliseconds. Each byte read from
standard input asks for one sync; all requests that arrived together share
one ``fdatasync`` (each was asked after its commit was written, so one sync
started after reading them covers them all). One line per request goes
back: ``ok`` or ``err <errno> <reason>``. End of input (the hub stopped or
died) ends the helper.

Why a process and not a thread: a thread has to win the interpreter lock
back from a busy event loop before and after every sync, which under load
costs milliseconds per commit (docs/BENCHMARKS.md). A process has its own.
"""

import os
import sys


def main() -> int:
    try:
        fd = os.open(sys.argv[1], os.O_RDWR)
    except (IndexError, OSError) as exc:
        os.write(2, f"walsync: cannot open the WAL file: {exc}\n".encode())
        return 2
    sync = getattr(os, "fdatasync", os.fsync)
    os.write(1, b"ready\n")
    while True:
        try:
            asked = os.read(0, 65536)
        except OSError:
            return 0
        if not asked:
            return 0
        try:
            sync(fd)
            reply = b"ok\n"
        except OSError as exc:
            reply = f"err {exc.errno} {exc.strerror}\n".encode()
        try:
            os.write(1, reply * len(asked))
        except OSError:  # the hub is gone
            return 0


if __name__ == "__main__":
    sys.exit(main())
