// Content hashes for journal keys: SHA-256 from OpenSSL's libcrypto (EVP), as lowercase hex.
#pragma once

#include <string>
#include <string_view>

namespace la3::llm {

// SHA-256 of `data` as 64 lowercase hex digits.
std::string sha256_hex(std::string_view data);

}  // namespace la3::llm
