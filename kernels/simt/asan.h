// LA3_SIMT_ASAN: 1 when this translation unit is compiled with AddressSanitizer. g++ says so
// with __SANITIZE_ADDRESS__; clang 14 (the sanitizer tree, scripts/build_sanitize.sh) only
// through __has_feature(address_sanitizer).
#pragma once

#if defined(__SANITIZE_ADDRESS__)
#define LA3_SIMT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LA3_SIMT_ASAN 1
#endif
#endif
#ifndef LA3_SIMT_ASAN
#define LA3_SIMT_ASAN 0
#endif
