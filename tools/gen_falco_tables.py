#!/usr/bin/env python3
"""Writes lib/rules/falco_tables.cc: Falco's field vocabulary and event parameters, read
from a falcosecurity/libs checkout (or bare mirror) at a given commit.

  tools/gen_falco_tables.py /work/.mirror/falcosecurity+libs/repo 48dfd53cd \
      > lib/rules/falco_tables.cc

What it takes, and from where:
  - userspace/libsinsp/sinsp_filtercheck_{event,gen_event,thread,user,group,fd,fspath,
    fdlist}.cpp: every field of the syscall source's classes (evt, proc/thread, user, group,
    fd, fs.path, fdlist): name, type, list and index flags, doc;
  - driver/event_table.c: every event's name, category and parameters (name, type, print
    format, flags/mode table), for evt.arg.<name> and the events driftwatch produces;
  - driver/flags_table.c: the flag and mode name tables those parameters print with.
Read only; nothing of libs is copied into the tree but these names, types and docs.
"""
import re
import subprocess
import sys

FILTERCHECKS = ["event", "gen_event", "thread", "user", "group", "fd", "fspath", "fdlist"]
# Exit events whose parameters driftwatch renders (EventType of lib/event/event_view.cc);
# fchmodat2 has no event of its own in libs (a generic syscall there): driftwatch gives it
# fchmodat's parameters.
PRODUCED = {
    "execve": "PPME_SYSCALL_EXECVE_19_X",
    "execveat": "PPME_SYSCALL_EXECVEAT_X",
    "chmod": "PPME_SYSCALL_CHMOD_X",
    "fchmod": "PPME_SYSCALL_FCHMOD_X",
    "fchmodat": "PPME_SYSCALL_FCHMODAT_X",
    "fchmodat2": "PPME_SYSCALL_FCHMODAT_X",
    "openat": "PPME_SYSCALL_OPENAT_2_X",
    "renameat2": "PPME_SYSCALL_RENAMEAT2_X",
    "unlinkat": "PPME_SYSCALL_UNLINKAT_2_X",
}
# Parameters driftwatch adds to an event of libs: audit's PATH record names the file an
# execveat ran as it does for execve (libs' execveat exit event has no filename).
EXTRA_PARAMS = {"execveat": [("filename", "PT_FSPATH", "PF_NA", "")]}
FLAG_TABLES = ["execve_flags", "file_flags", "chmod_mode", "unlinkat_flags", "renameat2_flags"]

STRING_TYPES = {"PT_CHARBUF", "PT_BYTEBUF", "PT_FSPATH", "PT_FSRELPATH", "PT_IPADDR",
                "PT_IPNET", "PT_IPV4ADDR", "PT_IPV6ADDR", "PT_IPV4NET", "PT_IPV6NET",
                "PT_SOCKADDR", "PT_SOCKTUPLE", "PT_FDLIST", "PT_CHARBUFARRAY",
                "PT_CHARBUF_PAIR_ARRAY", "PT_DYN", "PT_NONE"}


def show(repo, commit, path):
    return subprocess.run(["git", "-C", repo, "show", f"{commit}:{path}"], check=True,
                          capture_output=True, text=True).stdout


def c_strings(s):
    """The concatenation of the C string literals in s."""
    out = []
    for m in re.finditer(r'"((?:[^"\\]|\\.)*)"', s):
        out.append(m.group(1))
    return "".join(out)


def balanced(text, start):
    """The text of the {...} starting at text[start] == '{'."""
    depth = 0
    i = start
    in_str = False
    while i < len(text):
        c = text[i]
        if in_str:
            if c == "\\":
                i += 1
            elif c == '"':
                in_str = False
        elif c == '"':
            in_str = True
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return text[start:i + 1]
        i += 1
    raise ValueError("unbalanced")


def split_top(s):
    """s split at the commas outside strings, parentheses and braces."""
    parts, depth, cur, in_str, i = [], 0, [], False, 0
    while i < len(s):
        c = s[i]
        if in_str:
            cur.append(c)
            if c == "\\":
                cur.append(s[i + 1])
                i += 1
            elif c == '"':
                in_str = False
        elif c == '"':
            in_str = True
            cur.append(c)
        elif c in "({":
            depth += 1
            cur.append(c)
        elif c in ")}":
            depth -= 1
            cur.append(c)
        elif c == "," and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
        else:
            cur.append(c)
        i += 1
    if "".join(cur).strip():
        parts.append("".join(cur).strip())
    return parts


def field_type(pt, flags):
    if "EPF_IS_LIST" in flags:
        return "kList"
    if pt in STRING_TYPES:
        return "kString"
    if pt == "PT_BOOL":
        return "kBool"
    return "kNumber"


def arg_mode(flags):
    if "EPF_ARG_REQUIRED" in flags:
        return "kRequired"
    if "EPF_ARG_ALLOWED" in flags:
        return "kOptional"
    return "kNone"


def cstr(s):
    return '"' + s.replace("\\'", "'") + '"'


def main():
    repo, commit = sys.argv[1], sys.argv[2]
    fields = []
    for fc in FILTERCHECKS:
        text = show(repo, commit, f"userspace/libsinsp/sinsp_filtercheck_{fc}.cpp")
        m = re.search(r"filtercheck_field_info \w+\[\] = \{", text)
        body = balanced(text, m.end() - 1)[1:-1]
        for entry in re.finditer(r"\{PT_", body):
            e = balanced(body, entry.start())[1:-1]
            p = split_top(e)
            pt, flags, name, doc = p[0], p[1], c_strings(p[3]), c_strings(",".join(p[5:]))
            if "EPF_TABLE_ONLY" in flags:
                continue  # not usable in filters
            fields.append((name, field_type(pt, flags), arg_mode(flags),
                           "EPF_ARG_INDEX" in flags or "EPF_ARG_KEY" not in flags,
                           "EPF_DEPRECATED" in flags, doc))

    events = show(repo, commit, "driver/event_table.c")
    events = re.sub(r"/\*.*?\*/", "", re.sub(r"//[^\n]*", "", events), flags=re.S)
    table = {}
    order = []
    for m in re.finditer(r"\[(PPME_\w+)\]\s*=\s*\{", events):
        e = balanced(events, m.end() - 1)[1:-1]
        p = split_top(e)
        params = []
        if len(p) >= 5:
            inner = p[4].strip()[1:-1]
            for pm in split_top(inner):
                pp = split_top(pm.strip()[1:-1])
                if len(pp) < 3:
                    sys.stderr.write(f"skip {m.group(1)}: {pm!r}\n")
                    continue
                params.append((c_strings(pp[0]), pp[1], pp[2], pp[3] if len(pp) > 3 else ""))
        table[m.group(1)] = (c_strings(p[0]), p[1], p[2], params)
        order.append(m.group(1))

    # Every parameter name of every event, with the type of its first definition (what
    # Falco's find_longest_matching_evt_param finds first for an exact name).
    params = {}
    for k in order:
        for (name, pt, fmt, info) in table[k][3]:
            params.setdefault(name, (pt, fmt))

    # Category of every event name (its exit event's, else the first).
    cats = {}
    for k in order:
        name, cat = table[k][0], table[k][1]
        main_cat = [c.strip() for c in cat.split("|") if c.strip() not in
                    ("EC_SYSCALL", "EC_TRACEPOINT", "EC_PLUGIN", "EC_METAEVENT")]
        cats.setdefault(name, main_cat[0] if main_cat else cat.split("|")[0].strip())

    flags_src = show(repo, commit, "driver/flags_table.c")
    public = show(repo, commit, "driver/ppm_events_public.h").replace("\\\n", " ")
    defines = {}
    for m in re.finditer(r"#define\s+(PPM_\w+)\s+(.+?)(?:/\*.*)?$", public, re.M):
        defines[m.group(1)] = m.group(2).strip()

    def value(expr):
        expr = expr.strip()
        for _ in range(8):
            expr2 = re.sub(r"PPM_\w+", lambda mm: "(" + defines.get(mm.group(0), "0") + ")",
                           expr)
            if expr2 == expr:
                break
            expr = expr2
        return eval(expr.replace("\\", ""))

    flag_tables = {}
    for t in FLAG_TABLES:
        m = re.search(r"ppm_name_value " + t + r"\[\] = \{", flags_src)
        body = balanced(flags_src, m.end() - 1)[1:-1]
        rows = []
        for row in split_top(body):
            pp = split_top(row.strip()[1:-1])
            if pp[0] == "0":
                break
            rows.append((c_strings(pp[0]), value(pp[1])))
        flag_tables[t] = rows

    w = sys.stdout.write
    w("// GENERATED by tools/gen_falco_tables.py from falcosecurity/libs commit "
      f"{commit}; do not edit.\n")
    w("// Names, types and docs of Falco's syscall fields and event parameters (Apache-2.0,\n"
      "// The Falco Authors), as lib/rules/falco_tables.h describes.\n")
    w('#include "lib/rules/falco_tables.h"\n\nnamespace driftwatch::falco {\n\n')
    w("const FalcoField kFalcoFields[] = {\n")
    for (name, ft, am, index, dep, doc) in fields:
        w(f"    {{{cstr(name)}, FieldType::{ft}, FieldArgMode::{am}, "
          f"{'true' if index else 'false'}, {'true' if dep else 'false'},\n"
          f"     {cstr(doc)}}},\n")
    w("};\nconst size_t kFalcoFieldCount = sizeof kFalcoFields / sizeof kFalcoFields[0];\n\n")

    w("// Sorted by name.\nconst ParamName kParamNames[] = {\n")
    for name in sorted(params):
        pt, fmt = params[name]
        w(f"    {{{cstr(name)}, ParamType::{pt[3:]}}},\n")
    w("};\nconst size_t kParamNameCount = sizeof kParamNames / sizeof kParamNames[0];\n\n")

    for t, rows in flag_tables.items():
        w(f"const FlagName k_{t}[] = {{\n")
        for (n, v) in rows:
            w(f"    {{{cstr(n)}, {v}u}},\n")
        w("    {nullptr, 0},\n};\n")
    w("\n")
    for ev, key in PRODUCED.items():
        w(f"const Param k_{ev}_params[] = {{\n")
        for (name, pt, fmt, info) in table[key][3] + EXTRA_PARAMS.get(ev, []):
            flags = f"k_{info}" if info in flag_tables else "nullptr"
            w(f"    {{{cstr(name)}, ParamType::{pt[3:]}, ParamFormat::{fmt[3:]}, {flags}}},\n")
        w("};\n")
    w("const EventParams kProducedEvents[] = {\n")
    for ev in sorted(PRODUCED):
        w(f"    {{{cstr(ev)}, k_{ev}_params}},\n")
    w("};\nconst size_t kProducedEventCount = sizeof kProducedEvents / sizeof kProducedEvents[0];\n\n")

    w("// Sorted by name.\nconst EventCategory kEventCategories[] = {\n")
    for name in sorted(cats):
        w(f"    {{{cstr(name)}, Category::{cats[name][3:]}}},\n")
    w("};\nconst size_t kEventCategoryCount = sizeof kEventCategories / sizeof kEventCategories[0];\n\n")
    w("}  // namespace driftwatch::falco\n")

    sys.stderr.write(f"{len(fields)} fields, {len(params)} parameter names, "
                     f"{len(cats)} event names\n")
    types = sorted({pt for (pt, fmt) in params.values()} |
                   {pt for ev, key in PRODUCED.items() for (_, pt, _, _) in table[key][3]})
    fmts = sorted({fmt for k in order for (_, _, fmt, _) in table[k][3]})
    catset = sorted({c for c in cats.values()})
    sys.stderr.write("types: " + " ".join(types) + "\nformats: " + " ".join(fmts) +
                     "\ncategories: " + " ".join(catset) + "\n")


main()
