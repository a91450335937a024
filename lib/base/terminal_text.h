// terminal_text: bytes from outside (paths, names, command lines, messages, certificate
// fields) made safe to print on a terminal: nothing in them can move the cursor, set a
// title, end a line or start an escape sequence, and nothing is lost.
//
// Escaped, as backslash sequences:
//   \\           a backslash (so that the escaping can be undone)
//   \t \n \r     tab, newline, carriage return
//   \xHH         every other C0 control (0x00-0x1f, ESC is \x1b) and DEL (0x7f);
//                each byte of a C1 control written in UTF-8 (U+0080-U+009F: \xc2\x80 to
//                \xc2\x9f; 8-bit CSI is \xc2\x9b);
//                each byte that is not part of a valid UTF-8 sequence: raw 0x80-0xff outside
//                a sequence (a lone 0x9b among them), truncated sequences, overlong forms,
//                surrogates, code points past U+10FFFF
// Copied as they are: printable ASCII other than the backslash, and valid UTF-8 from U+00A0.
// Hex digits are lower case. The result is printable ASCII plus valid UTF-8 (U+00A0 and up).
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>

namespace driftwatch {

void AppendTerminalEscaped(std::string_view bytes, std::string* out);
std::string TerminalEscape(std::string_view bytes);

// A message of several lines (an error listing candidates, say): each line escaped, the
// newlines between them kept. A newline inside an inserted name is not told apart from ours:
// use TerminalEscape on the pieces instead where that matters.
std::string TerminalEscapeLines(std::string_view text);

// True when TerminalEscape(bytes) == bytes: nothing to escape.
bool IsTerminalClean(std::string_view bytes);

}  // namespace driftwatch
