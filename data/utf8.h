// UTF-8 validity of text read from users' files. Invalid bytes must never pass silently:
// SentencePiece would encode them as byte pieces, RDKit would see a different string than the
// user's, and a TSV written from them is no longer text. Readers call this and report the
// byte offset.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace la3 {

// Offset of the first byte that does not start a well-formed UTF-8 sequence (overlong forms,
// surrogates and code points past U+10FFFF are ill-formed, as in Unicode's definition), or
// nullopt when `text` is entirely valid.
std::optional<size_t> first_invalid_utf8(std::string_view text);

// "" when valid, else "invalid UTF-8 in <what> at byte <offset> (0x<byte>)".
std::string describe_invalid_utf8(std::string_view text, std::string_view what);

}  // namespace la3
