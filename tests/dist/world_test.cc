// The world outside a launcher: one rank, no MPI, a single communicator that is the
// identity; and launcher detection from the environment.
#include <gtest/gtest.h>

#include <cstdlib>
#include <vector>

#include "dist/communicator.h"
#include "dist/world.h"

namespace la3::dist {
namespace {

// Sets environment variables for one test and restores them.
class ScopedEnvironment {
 public:
  void set(const char* name, const char* value) {
    const char* old = std::getenv(name);
    saved_.push_back({name, old != nullptr, old != nullptr ? old : ""});
    if (value != nullptr) {
      setenv(name, value, 1);
    } else {
      unsetenv(name);
    }
  }
  ~ScopedEnvironment() {
    for (auto it = saved_.rbegin(); it != saved_.rend(); ++it) {
      if (it->had) {
        setenv(it->name, it->value.c_str(), 1);
      } else {
        unsetenv(it->name);
      }
    }
  }

 private:
  struct Saved {
    const char* name;
    bool had;
    std::string value;
  };
  std::vector<Saved> saved_;
};

void clear_launcher_variables(ScopedEnvironment& env) {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE", "SLURM_NTASKS", "SLURM_STEP_ID"}) {
    env.set(name, nullptr);
  }
}

TEST(World, DetectsEachLauncherFromItsEnvironment) {
  ScopedEnvironment env;
  clear_launcher_variables(env);
  EXPECT_EQ(*detect_launcher(), "none");
  env.set("PMI_RANK", "0");
  EXPECT_EQ(*detect_launcher(), "pmi2");
  env.set("PMIX_RANK", "3");
  EXPECT_EQ(*detect_launcher(), "pmix");
  env.set("OMPI_COMM_WORLD_SIZE", "4");
  EXPECT_EQ(*detect_launcher(), "mpirun");
}

TEST(World, SrunWithoutAnMpiPluginIsAnErrorThatSaysWhatToDo) {
  ScopedEnvironment env;
  clear_launcher_variables(env);
  env.set("SLURM_NTASKS", "8");
  env.set("SLURM_STEP_ID", "0");
  const absl::StatusOr<std::string> launcher = detect_launcher();
  ASSERT_FALSE(launcher.ok());
  EXPECT_NE(launcher.status().message().find("srun --mpi=pmix"), std::string::npos) << launcher.status();
  // One task (srun -n 1) is a plain single-process run.
  env.set("SLURM_NTASKS", "1");
  EXPECT_EQ(*detect_launcher(), "none");
}

TEST(World, WithoutALauncherTheWorldIsOneRankAndMpiIsNotTouched) {
  ScopedEnvironment env;
  clear_launcher_variables(env);
  const absl::StatusOr<World> w = initialize_world();
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->size, 1);
  EXPECT_EQ(w->rank, 0);
  EXPECT_EQ(w->local_rank, 0);
  EXPECT_FALSE(w->mpi);
  EXPECT_EQ(w->label(), "");
  EXPECT_EQ(make_world_communicator(1.0)->name(), "single");
}

TEST(SingleCommunicator, IsTheIdentityForReductionsAndACopyForScatterAndGather) {
  auto comm = make_single_communicator();
  EXPECT_EQ(comm->size(), 1);
  std::vector<float> buffer = {1.5f, -2.0f};
  ASSERT_TRUE(comm->all_reduce_sum(buffer.data(), 2, ElementType::kF32)->wait().ok());
  EXPECT_EQ(buffer, (std::vector<float>{1.5f, -2.0f}));
  std::vector<float> out(2, 0.0f);
  ASSERT_TRUE(comm->reduce_scatter_sum(buffer.data(), out.data(), 2, ElementType::kF32)->wait().ok());
  EXPECT_EQ(out, buffer);
  std::fill(out.begin(), out.end(), 0.0f);
  ASSERT_TRUE(comm->all_gather(buffer.data(), out.data(), 2, ElementType::kF32)->wait().ok());
  EXPECT_EQ(out, buffer);
  EXPECT_FALSE(comm->broadcast(buffer.data(), 2, ElementType::kF32, 1)->wait().ok());
  EXPECT_TRUE(comm->barrier().ok());
}

}  // namespace
}  // namespace la3::dist
