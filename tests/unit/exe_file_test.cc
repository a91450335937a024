// The file an exec actually runs (lib/event/exe_file.h): the loader's argv, and exe_file and
// is_exe_from_memfd from real audit records of this machine (Linux 6.18, auditd RAW log, a
// static fd_exec from tests/integration and the host's dash and glibc loader).
#include "lib/event/exe_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "lib/audit/audit_event.h"
#include "lib/event/event_json.h"
#include "unit/exe_file_records.h"
#include "unit/test_util.h"

namespace driftwatch {
namespace {

google::protobuf::RepeatedPtrField<std::string> Argv(std::vector<std::string> words) {
  google::protobuf::RepeatedPtrField<std::string> out;
  for (std::string& w : words) out.Add(std::move(w));
  return out;
}

TEST(ExeFile, LoaderNames) {
  for (const char* yes : {"ld-linux-x86-64.so.2", "ld-linux.so.2", "ld-linux-aarch64.so.1",
                          "ld-linux-armhf.so.3", "ld64.so.2", "ld.so.1", "ld.so", "ld-2.31.so",
                          "ld-musl-x86_64.so.1", "ld-uClibc.so.0"}) {
    EXPECT_TRUE(IsDynamicLoaderName(yes)) << yes;
  }
  for (const char* no : {"ld", "ld.gold", "ld.bfd", "ldconfig", "ldd", "libc.so.6", "sold",
                         "busybox", ""}) {
    EXPECT_FALSE(IsDynamicLoaderName(no)) << no;
  }
}

TEST(ExeFile, Memfd) {
  EXPECT_TRUE(IsMemfdExe("/memfd:payload (deleted)"));
  EXPECT_TRUE(IsMemfdExe("/memfd: (deleted)"));
  EXPECT_FALSE(IsMemfdExe("/memfd:payload"));  // a real file of that name
  EXPECT_FALSE(IsMemfdExe("/tmp/x (deleted)"));
  EXPECT_TRUE(IsDeletedExe("/tmp/x (deleted)"));
}

TEST(ExeFile, JoinPath) {
  EXPECT_EQ(JoinPath("./s.sh", "/tmp/w"), "/tmp/w/s.sh");
  EXPECT_EQ(JoinPath("../a/./b", "/tmp/w"), "/tmp/a/b");
  EXPECT_EQ(JoinPath("/x/../../y", "/tmp"), "/y");
  EXPECT_EQ(JoinPath("x", ""), "/x");
  EXPECT_EQ(JoinPath("", "/tmp"), "");
  EXPECT_EQ(JoinPath("/", "/tmp"), "/");
}

// The loader's own options are skipped, whichever loader and spelling; what follows is the
// program (and its arguments).
TEST(ExeFile, ProgramOfLoader) {
  struct Case {
    const char* loader;
    std::vector<std::string> argv;
    const char* program;  // nullptr: none
    bool searched;
    std::vector<std::string> library_path;
  };
  const Case cases[] = {
      {"ld-linux-x86-64.so.2", {"/lib64/ld-linux-x86-64.so.2", "/tmp/evil", "-x"}, "/tmp/evil",
       false, {}},
      {"ld-linux-x86-64.so.2", {"ld.so", "./evil"}, "./evil", false, {}},
      {"ld-linux-x86-64.so.2",
       {"ld.so", "--library-path", "/a:/b;c", "--preload", "/p.so", "--argv0", "x",
        "--inhibit-cache", "--inhibit-rpath", "l", "--audit", "a.so", "--glibc-hwcaps-prepend",
        "h", "--glibc-hwcaps-mask", "m", "--list", "--verify", "/tmp/evil", "arg"},
       "/tmp/evil", false, {"/a", "/b", "c"}},
      // "--" ends the options; a word after it starting with "--" is the program.
      {"ld-linux-x86-64.so.2", {"ld.so", "--", "--evil"}, "--evil", true, {}},
      // glibc takes one-dash words as the program, and searches for names without '/'.
      {"ld-linux-x86-64.so.2", {"ld.so", "-evil"}, "-evil", true, {}},
      {"ld-2.31.so", {"ld.so", "evil"}, "evil", true, {}},
      // glibc has no "--opt=VALUE": the word is an (unknown) option, not a program.
      {"ld-linux-x86-64.so.2", {"ld.so", "--library-path=/x", "/tmp/evil"}, "/tmp/evil", false,
       {}},
      // An option missing its value, options only, --help: no program.
      {"ld-linux-x86-64.so.2", {"ld.so", "--library-path"}, nullptr, false, {}},
      {"ld-linux-x86-64.so.2", {"ld.so", "--list"}, nullptr, false, {}},
      {"ld-linux-x86-64.so.2", {"ld.so"}, nullptr, false, {}},
      {"ld-linux-x86-64.so.2", {}, nullptr, false, {}},
      {"ld-linux-x86-64.so.2", {"ld.so", ""}, nullptr, false, {}},
      // musl: "--opt=VALUE" or the next word; a bare name is opened in the cwd.
      {"ld-musl-x86_64.so.1", {"/lib/ld-musl-x86_64.so.1", "--library-path=/m", "evil"}, "evil",
       false, {"/m"}},
      {"ld-musl-x86_64.so.1", {"ld", "--preload", "/p.so", "--argv0", "a", "--", "./e"}, "./e",
       false, {}},
  };
  for (const Case& c : cases) {
    auto got = ProgramOfLoader(c.loader, Argv(c.argv));
    std::string what = ::testing::PrintToString(c.argv);
    if (c.program == nullptr) {
      EXPECT_FALSE(got.has_value()) << what << " -> " << got->name;
      continue;
    }
    ASSERT_TRUE(got.has_value()) << what;
    EXPECT_EQ(got->name, c.program) << what;
    EXPECT_EQ(got->searched, c.searched) << what;
    EXPECT_EQ(got->library_path, c.library_path) << what;
  }
}

TEST(ExeFile, LoaderDefaultDirs) {
  auto dirs = LoaderDefaultDirs("x86_64");
  EXPECT_EQ(dirs.front(), "/usr/local/lib/x86_64-linux-gnu");
  EXPECT_NE(std::find(dirs.begin(), dirs.end(), "/lib/x86_64-linux-gnu"), dirs.end());
  EXPECT_NE(std::find(dirs.begin(), dirs.end(), "/usr/lib"), dirs.end());
  EXPECT_EQ(LoaderDefaultDirs("").front(), "/usr/local/lib");
}


TEST(ExeFile, FromCapturedRecords) {
  const std::map<uint64_t, v1::Event> evs = testing::CapturedExecs();
  ASSERT_EQ(evs.size(), 9u);
  auto BySerial = [](const auto& m, uint64_t serial) -> const v1::ProcessExec& {
    return m.at(serial).exec();
  };

  // fd_exec memfd payload /bin/busybox echo memfd-ran: execveat(fd, "", AT_EMPTY_PATH).
  const auto& memfd = BySerial(evs, 234663);
  EXPECT_EQ(memfd.syscall(), "execveat");
  EXPECT_EQ(memfd.exe(), "/memfd:payload (deleted)");
  EXPECT_TRUE(memfd.has_is_exe_from_memfd() && memfd.is_exe_from_memfd());
  EXPECT_EQ(memfd.exe_file(), "");  // exe is what runs
  EXPECT_EQ(memfd.path(), "");
  EXPECT_EQ(memfd.exe_inode(), 1055u);

  // fd_exec fd /tmp/exe-exp/dropped: exe names the file.
  const auto& fd = BySerial(evs, 234665);
  EXPECT_EQ(fd.exe(), "/tmp/exe-exp/dropped");
  EXPECT_FALSE(fd.is_exe_from_memfd());
  EXPECT_EQ(fd.exe_file(), "");
  EXPECT_EQ(fd.exe_inode(), 11010087u);

  // The same, unlinked before the exec.
  const auto& unlinked = BySerial(evs, 234667);
  EXPECT_EQ(unlinked.exe(), "/tmp/exe-exp/d2 (deleted)");
  EXPECT_FALSE(unlinked.is_exe_from_memfd());
  EXPECT_EQ(unlinked.exe_inode(), 11010106u);

  // execve("/proc/self/fd/4").
  const auto& procfd = BySerial(evs, 234669);
  EXPECT_EQ(procfd.exe(), "/usr/bin/busybox");
  EXPECT_EQ(procfd.path(), "/proc/self/fd/4");
  EXPECT_EQ(procfd.exe_file(), "");

  // /lib64/ld-linux-x86-64.so.2 /tmp/exe-exp/truecopy
  const auto& loader = BySerial(evs, 234670);
  EXPECT_EQ(loader.exe(), "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2");
  EXPECT_EQ(loader.path(), "/lib64/ld-linux-x86-64.so.2");
  EXPECT_EQ(loader.exe_file(), "/tmp/exe-exp/truecopy");
  EXPECT_EQ(loader.exe_file_inode(), 0u);  // the sensor looks at it
  EXPECT_FALSE(loader.is_exe_from_memfd());

  // ld.so --library-path /nonexist ./truecopy a b, in /tmp/exe-exp.
  EXPECT_EQ(BySerial(evs, 234671).exe_file(), "/tmp/exe-exp/truecopy");

  // ./s.sh (#!/bin/sh): exe is dash, item 0 the script, item 1 /bin/sh.
  const auto& script = BySerial(evs, 234672);
  EXPECT_EQ(script.exe(), "/usr/bin/dash");
  EXPECT_EQ(script.interpreter(), "/bin/sh");
  EXPECT_EQ(script.exe_file(), "/tmp/exe-exp/s.sh");
  EXPECT_EQ(script.exe_file_inode(), 11010101u);
  EXPECT_EQ(script.exe_file_dev_major(), 0xfeu);
  EXPECT_EQ(script.exe_file_dev_minor(), 0u);

  // ./s2.sh (#!/tmp/exe-exp/s.sh): the outer script is the file named to run.
  const auto& nested = BySerial(evs, 234673);
  EXPECT_EQ(nested.exe_file(), "/tmp/exe-exp/s2.sh");
  EXPECT_EQ(nested.exe_file_inode(), 11010102u);
  EXPECT_EQ(nested.interpreter(), "/tmp/exe-exp/s.sh");

  // A dynamic ELF: item 1 is its loader, not a #! interpreter.
  const auto& elf = BySerial(evs, 234685);
  EXPECT_EQ(elf.exe(), "/usr/bin/true");
  EXPECT_EQ(elf.interpreter(), "/lib64/ld-linux-x86-64.so.2");
  EXPECT_EQ(elf.exe_file(), "");
  EXPECT_EQ(elf.exe_file_inode(), 0u);
}

// The sensor's look at a container's file: symlinks and ".." resolve inside the root given,
// never to the host's files of the same name.
TEST(ExeFile, OpenInRootStaysInside) {
  char tmpl[] = "/tmp/exe_file_test.XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::filesystem::path dir = tmpl;
  std::filesystem::create_directories(dir / "bin");
  std::filesystem::create_directories(dir / "etc");
  std::filesystem::create_directories(dir / "sub");
  std::ofstream(dir / "bin/prog") << "prog";
  std::ofstream(dir / "etc/passwd") << "inside";
  std::filesystem::create_symlink("/etc/passwd", dir / "abs");
  std::filesystem::create_symlink("../../../../../../etc/passwd", dir / "up");
  std::filesystem::create_symlink("../bin/prog", dir / "sub/link");
  int root = open(tmpl, O_PATH | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(root, 0);
  auto ino_of = [](const std::filesystem::path& p) {
    struct stat st {};
    return stat(p.c_str(), &st) == 0 ? st.st_ino : 0;
  };
  auto opened_ino = [](int fd) -> ino_t {
    struct stat st {};
    bool ok = fd >= 0 && fstat(fd, &st) == 0;
    if (fd >= 0) close(fd);
    return ok ? st.st_ino : 0;
  };
  const ino_t inside = ino_of(dir / "etc/passwd"), prog = ino_of(dir / "bin/prog");
  EXPECT_EQ(opened_ino(OpenInRoot(root, "/bin/prog")), prog);
  EXPECT_EQ(opened_ino(OpenInRoot(root, "/abs")), inside);
  EXPECT_EQ(opened_ino(OpenInRoot(root, "/up")), inside);
  EXPECT_EQ(opened_ino(OpenInRoot(root, "/bin/../../../etc/passwd")), inside);
  EXPECT_EQ(opened_ino(OpenInRoot(root, "/sub/link")), prog);
  EXPECT_EQ(OpenInRoot(root, "/missing"), -1);
  EXPECT_EQ(errno, ENOENT);
  // Without openat2: plain names only.
  EXPECT_EQ(opened_ino(OpenInRootNoSymlinks(root, "/bin/prog")), prog);
  EXPECT_EQ(OpenInRootNoSymlinks(root, "/abs"), -1);
  EXPECT_EQ(errno, ELOOP);
  EXPECT_EQ(OpenInRootNoSymlinks(root, "/sub/link"), -1);
  EXPECT_EQ(errno, ELOOP);
  EXPECT_EQ(OpenInRootNoSymlinks(root, "/bin/../etc/passwd"), -1);
  EXPECT_EQ(errno, EACCES);
  close(root);
  std::filesystem::remove_all(dir);
}

// What `driftwatch analyze --events` prints of them, from the log alone.
TEST(ExeFile, EventJson) {
  const std::map<uint64_t, v1::Event> evs = testing::CapturedExecs();
  std::string script, memfd;
  ASSERT_TRUE(AppendEventJson(evs.at(234672), &script));
  EXPECT_NE(script.find(R"("proc.exe_file":"/tmp/exe-exp/s.sh","proc.exe_file.ino":11010101,)"
                        R"("proc.exe_file.dev":"fe:00","proc.is_exe_from_memfd":false)"),
            std::string::npos) << script;
  EXPECT_EQ(script.find("proc.exe_file.stat"), std::string::npos) << script;  // live only
  ASSERT_TRUE(AppendEventJson(evs.at(234663), &memfd));
  EXPECT_NE(memfd.find(R"j("proc.exe_file":"/memfd:payload (deleted)","proc.is_exe_from_memfd":true)j"),
            std::string::npos) << memfd;
}

// execveat with a directory fd and a relative name, or "" (AT_EMPTY_PATH) for a script run by
// its fd: the kernel's own name, /dev/fd/N[/NAME], not the cwd's.
TEST(ExeFile, ScriptByDirectoryFd) {
  const std::string sys =
      "type=SYSCALL msg=audit(1700000000.100:9): arch=c000003e syscall=322 success=yes exit=0 "
      "a0=3 a1=2 a2=3 a3=4 items=2 ppid=10 pid=11 auid=0 uid=0 gid=0 euid=0 suid=0 fsuid=0 "
      "egid=0 sgid=0 fsgid=0 tty=(none) ses=1 comm=\"3\" exe=\"/bin/busybox\" key=\"x\"";
  for (auto [name, want] : {std::pair{"\"\"", "/dev/fd/3"}, std::pair{"\"s.sh\"", "/dev/fd/3/s.sh"}}) {
    auto res = RunLines({sys, "type=EXECVE msg=audit(1700000000.100:9): argc=2 a0=\"sh\" a1=\"/dev/fd/3\"",
                         "type=CWD msg=audit(1700000000.100:9): cwd=\"/root\"",
                         std::string("type=PATH msg=audit(1700000000.100:9): item=0 name=") + name +
                             " inode=77 dev=00:27 mode=0100755",
                         "type=PATH msg=audit(1700000000.100:9): item=1 name=\"/bin/sh\" inode=5 dev=00:27",
                         "type=EOE msg=audit(1700000000.100:9): "});
    ASSERT_EQ(res.events.size(), 1u);
    EXPECT_EQ(res.events[0].exec().exe_file(), want);
    EXPECT_EQ(res.events[0].exec().exe_file_inode(), 77u);
  }
}

}  // namespace
}  // namespace driftwatch
