// exe_file: which file an exec actually runs, where audit's exe= names another one (issue 11).
// What the kernel reports, seen on this machine (Linux 6.18):
//   - a #! script: exe= is the interpreter (/usr/bin/dash), PATH item 0 the script as named
//     (./s.sh), item 1 the #! interpreter (/bin/sh), item 2 its ELF interpreter if dynamic;
//     a script whose interpreter is a script adds one item per level;
//   - a dynamic loader run as a command (`/lib64/ld-linux-x86-64.so.2 /tmp/evil`): exe= and
//     PATH item 0 are the loader, one item only; the program is a word of argv;
//   - execveat(fd, "", AT_EMPTY_PATH) (fexecve): exe= is the file (d_path, " (deleted)" when
//     unlinked), PATH item 0 has name="" and the file's inode; on a memfd exe= reads
//     "/memfd:NAME (deleted)" and the device is the kernel's internal shmem mount (00:01);
//   - execve("/proc/self/fd/N"): exe= is the file, PATH item 0 name="/proc/self/fd/N";
//   - a plain dynamic ELF: item 0 the program, item 1 its PT_INTERP (the loader).
// Pure functions over those records, and the safe open the sensor looks at the file they
// name with (sensor/enrich). Thread-safe (no state).
#pragma once

#include <google/protobuf/repeated_ptr_field.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace driftwatch {

// Lexically normal absolute path: "a/./b/../c" under cwd "/w" -> "/w/a/c" (no symlinks
// read). Audit's PATH names and argv words are as the program gave them, maybe relative.
// "" for an empty path.
std::string JoinPath(std::string_view path, std::string_view cwd);

// A dynamic loader's file name (the basename of a resolved exe=): glibc's ld-linux*.so*,
// ld64.so.*, ld.so*, ld-2.31.so; musl's ld-musl-*.so.1; uClibc's ld-uClibc*.so*. Not ld
// (the linker), ld.gold, ldconfig.
bool IsDynamicLoaderName(std::string_view basename);

// exe= of a process run from an anonymous memfd: "/memfd:NAME (deleted)" (Falco's
// proc.is_exe_from_memfd).
bool IsMemfdExe(std::string_view exe);

// exe= of a file unlinked after it was opened: d_path appends " (deleted)".
bool IsDeletedExe(std::string_view exe);
// The path such an exe= had before it was deleted ("" when exe is not one).
std::string_view DeletedExePath(std::string_view exe);

// The program a dynamic loader run as a command loads, from its argv (argv[0] is the
// loader). glibc takes "--opt VALUE" options (--library-path, --preload, --argv0,
// --inhibit-rpath, --audit, --glibc-hwcaps-prepend, --glibc-hwcaps-mask) and flags (--list,
// --verify, --inhibit-cache, --help, ...); the first word not starting with "--" is the
// program; "--" ends the options. musl takes --library-path, --preload and --argv0, also as
// "--opt=VALUE". A program name with a '/' is opened relative to the cwd; glibc searches
// its library path for one without (musl opens it in the cwd).
struct LoaderProgram {
  std::string name;                       // as argv gave it
  bool searched = false;                  // glibc, no '/': found by the library path search
  std::vector<std::string> library_path;  // --library-path directories, in order
};
// nullopt when argv names no program (options only).
std::optional<LoaderProgram> ProgramOfLoader(
    std::string_view loader_basename, const google::protobuf::RepeatedPtrField<std::string>& argv);

// Opens `path` (absolute, as a process whose root is `root` names it) as an O_PATH fd
// without leaving `root`: openat2's RESOLVE_IN_ROOT scopes ".." and absolute symlinks to
// it, RESOLVE_NO_MAGICLINKS refuses /proc/<pid>/fd-style jumps. Before Linux 5.6 (no
// openat2) it falls back to OpenInRootNoSymlinks. -1 with errno on failure.
int OpenInRoot(int root, const std::string& path);
// The fallback: a walk that refuses every symlink and ".." (ELOOP, EACCES).
int OpenInRootNoSymlinks(int root, const std::string& path);

// Directories glibc's loader searches for a program named without a '/' after the
// --library-path ones (its trusted directories; LD_LIBRARY_PATH and ld.so.cache entries
// elsewhere are not seen), for an audit arch name ("x86_64", "aarch64", ...).
std::vector<std::string> LoaderDefaultDirs(std::string_view arch);

}  // namespace driftwatch
