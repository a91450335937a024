#!/usr/bin/env python3
"""Run a command with a new pseudo-terminal as its controlling terminal and stdin/stdout/
stderr, copy what it prints to stdout, and exit with its status; kill it after SECONDS.

script(1) does the same, but when its own stdin ends (a test's </dev/null) it writes an
end-of-file to the terminal at a moment it picks, which `ctr tasks exec -t` raced with (the
exec hung until its timeout on one machine). Here the terminal's input stays open and empty.

Usage: in_pty.py SECONDS COMMAND [ARG...]
"""
import os
import pty
import select
import signal
import sys
import time


def main() -> int:
    if len(sys.argv) < 3:
        print("usage: in_pty.py SECONDS COMMAND [ARG...]", file=sys.stderr)
        return 2
    deadline = time.monotonic() + float(sys.argv[1])
    pid, master = pty.fork()
    if pid == 0:
        try:
            os.execvp(sys.argv[2], sys.argv[2:])
        finally:
            os._exit(127)
    timed_out = False
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            timed_out = True
            os.kill(pid, signal.SIGKILL)
            break
        ready, _, _ = select.select([master], [], [], left)
        if not ready:
            continue
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: every holder of the terminal's other side has closed it
            break
        if not chunk:
            break
        sys.stdout.buffer.write(chunk)
        sys.stdout.flush()
    _, status = os.waitpid(pid, 0)
    if timed_out:
        print(f"in_pty.py: {sys.argv[2]} killed after {sys.argv[1]} s", file=sys.stderr)
        return 124
    return os.waitstatus_to_exitcode(status) & 0xFF


if __name__ == "__main__":
    sys.exit(main())
