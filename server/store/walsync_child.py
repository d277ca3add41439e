"""The WAL sync helper: a child process that makes the hub's commits durable.

Run as ``python -I -S walsync_child.py <fd> [<witness fd>]`` by
``walsync.WalSync``, standard library only, so it starts in milliseconds.
It inherits the WAL file open (``<fd>``) rather than opening a path: every
helper the hub ever starts syncs the same open file, and a symlinked or
relative database path cannot point it at another file. Given a witness
(a second open of the same file that nothing else syncs), it syncs that
first: a write-back error that happened since the hub opened it, and that a
previous helper may have died before reporting, is reported now.

Each byte read from standard input asks for one sync; all requests that
arrived together share one ``fdatasync`` (each was asked after its commit was
written, so one sync started after reading them covers them all). One line
per request goes back: ``ok`` or ``err <errno> <reason>``. End of input (the
hub stopped or died) ends the helper; it ignores SIGINT and SIGTERM, which
reach it with the hub's process group, so that a stopping hub still gets its
last syncs.

Why a process and not a thread: a thread has to win the interpreter lock
back from a busy event loop before and after every sync, which under load
costs milliseconds per commit (docs/BENCHMARKS.md). A process has its own.
"""

import os
import signal
import sys


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sync = getattr(os, "fdatasync", os.fsync)
    try:
        fd = int(sys.argv[1])
        witness = int(sys.argv[2]) if len(sys.argv) > 2 else -1
        os.fstat(fd)
    except (IndexError, ValueError, OSError) as exc:
        os.write(2, f"walsync: no WAL file to sync: {exc}\n".encode())
        return 2
    failed = b""
    if witness >= 0:
        try:
            sync(witness)
        except OSError as exc:  # every sync this helper is asked for fails
            failed = f"err {exc.errno} {exc.strerror} (seen by the witness)\n".encode()
    os.write(1, b"ready\n")
    while True:
        try:
            asked = os.read(0, 65536)
        except OSError:
            return 0
        if not asked:
            return 0
        reply = failed
        if not reply:
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
