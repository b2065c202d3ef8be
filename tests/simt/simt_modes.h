// Test support: run a SIMT-emulated test in a given thread order and worker count.
// Parameters are "order" or "order/workers" (LA3_SIMT_ORDER, LA3_SIMT_WORKERS).
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

namespace la3::testing {

class SimtModeTest : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    const std::string mode = GetParam();
    const size_t slash = mode.find('/');
    setenv("LA3_SIMT_ORDER", mode.substr(0, slash).c_str(), 1);
    if (slash != std::string::npos) setenv("LA3_SIMT_WORKERS", mode.substr(slash + 1).c_str(), 1);
  }
  void TearDown() override {
    unsetenv("LA3_SIMT_ORDER");
    unsetenv("LA3_SIMT_WORKERS");
  }
};

// "shuffled/2" -> "shuffled_2" (gtest names allow only alphanumerics and _).
inline std::string simt_mode_name(const ::testing::TestParamInfo<const char*>& info) {
  std::string name = info.param;
  for (char& c : name) c = c == '/' ? '_' : c;
  return name;
}

}  // namespace la3::testing
