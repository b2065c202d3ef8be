// main() of the test binaries run under mpirun (tests/dist): initialises the distributed
// World, runs every test on every rank, and lets only rank 0 print gtest's progress; the other
// ranks print their failures labelled with their rank. Any rank's failure fails the launch
// (mpirun returns non-zero).
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "dist/world.h"

namespace {

class RankFailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit RankFailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const ::testing::TestPartResult& result) override {
    if (result.failed()) {
      std::fprintf(stderr, "[rank %d] %s:%d: failure\n%s\n", rank_, result.file_name() ? result.file_name() : "?",
                   result.line_number(), result.summary());
    }
  }

 private:
  int rank_;
};

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  absl::StatusOr<la3::dist::World> world = la3::dist::initialize_world();
  if (!world.ok()) {
    std::fprintf(stderr, "%s\n", std::string(world.status().message()).c_str());
    return 2;
  }
  if (world->rank != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new RankFailurePrinter(world->rank));
  }
  const int result = RUN_ALL_TESTS();
  la3::dist::finalize_world();
  return result;
}
