#!/usr/bin/env python3
"""Runs a known set of execs and writes the check_events.py spec for them.

Usage: live_execs.py SPEC_OUT TAG
Each exec carries TAG so that it cannot be confused with the machine's other execs.
Arguments cover what the audit EXECVE encoding has to survive: spaces, quotes, non-ASCII,
bytes that are not UTF-8, an empty argument, a 20 KB argument (split by the kernel into
aN_len/aN[i] chunks), more than ten arguments (a10 after a9).
"""
import json
import os
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
    [echo, tag, "x" * 20000],
    [echo, tag] + [f"arg{i}" for i in range(2, 14)],
    [echo, tag, "tab\there", "new\nline"],
]
for argv in cases:
    subprocess.run([a.encode("utf-8", "surrogateescape") for a in argv],
                   stdout=subprocess.DEVNULL, check=True)
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
        "execs": [{"argv": a, "container": "host", "res": "SUCCESS"} for a in cases],
        "failed": [{"path": path, "res": "EACCES", "container": "host"}]}
with open(out, "w") as f:
    json.dump(spec, f)
