#!/usr/bin/env python3
"""Runs a known set of execs and writes the check_events.py spec for them.

Usage: live_execs.py SPEC_OUT TAG
Each exec carries TAG so that it cannot be confused with the machine's other execs.
Arguments cover what the audit EXECVE encoding has to survive: spaces, quotes, non-ASCII,
bytes that are not UTF-8, an empty argument, a 4,000-byte argument with spaces (hex-encoded
and split by the kernel into aN_len/aN[i] chunks), more than ten arguments (a10 after a9).
And the argument caps at their defaults (64 KiB in all, 4 KiB an argument): a 20 KB argument
and ~6 MB of arguments (1.5 MiB where the stack limit cannot be raised) arrive whole from the kernel and are kept cut, marked args_capped,
argc exact.
"""
import json
import os
import resource
import subprocess
import sys

out, tag = sys.argv[1], sys.argv[2]
echo = "/bin/echo"
cases = [
    [echo, tag, "with space", "two  spaces "],
    [echo, tag, 'dq"uote', "sq'uote", "back\\slash", "$HOME"],
    [echo, tag, "héllo wörld ☃", "日本語"],
    [echo, tag, b"\xff\xfe not utf-8".decode("utf-8", "surrogateescape")],
    [echo, tag, "", "after-empty", ""],
    [echo, tag, "x " * 2000],
    [echo, tag] + [f"arg{i}" for i in range(2, 14)],
    [echo, tag, "tab\there", "new\nline"],
]
# The kernel takes up to a quarter of the stack limit of arguments, at most 6 MiB: with a
# 32 MiB stack limit, ~6 MB of arguments (46 of 128 KiB, the most one argument can be).
soft, hard = resource.getrlimit(resource.RLIMIT_STACK)
big_stack = hard == resource.RLIM_INFINITY or hard >= 32 << 20
capped_cases = [
    [echo, tag, "y" * 20000],
    [echo, tag] + [chr(ord("a") + i % 26) * (128 * 1024 - 1) for i in range(46 if big_stack else 12)],
]


def raise_stack():
    if big_stack:
        resource.setrlimit(resource.RLIMIT_STACK, (32 << 20, hard))


def capped(argv, max_bytes=64 * 1024, max_arg_bytes=4096):
    """What the sensor keeps of argv: each argument counts its bytes and its NUL."""
    kept, used = [], 0
    for a in argv:
        if used >= max_bytes:
            break
        used += 1
        n = min(len(a.encode("utf-8", "surrogateescape")), max_arg_bytes, max_bytes - used)
        kept.append(a[:n])
        used += n
    return kept


for argv in cases + capped_cases:
    subprocess.run([a.encode("utf-8", "surrogateescape") for a in argv],
                   stdout=subprocess.DEVNULL, check=True, preexec_fn=raise_stack)
# A failed exec: the file exists but is not executable.
path = f"/tmp/{tag}-noexec"
with open(path, "w") as f:
    f.write("#!/bin/sh\n")
os.chmod(path, 0o644)
try:
    subprocess.run([path, tag])
except PermissionError:
    pass
os.unlink(path)

spec = {"unique_serials": True,
        "execs": [{"argv": a, "container": "host", "res": "SUCCESS"} for a in cases] +
                 [{"argv": capped(a), "argc": len(a), "capped": True, "container": "host",
                   "res": "SUCCESS"} for a in capped_cases],
        "failed": [{"path": path, "res": "EACCES", "container": "host"}]}
with open(out, "w") as f:
    json.dump(spec, f)
