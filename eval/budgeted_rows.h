// Per-row work under a wall-clock budget, in worker processes.
//
// RDKit cannot be interrupted: one degenerate prediction (a 2,000-atom chain spends half a
// minute in CIP ranking; a 10 MB SMILES never finishes) would hold a whole evaluation
// hostage, and a thread cannot be killed. So the rows go to forked worker processes, one row
// at a time; a worker that overruns its row's budget is killed (SIGKILL) and replaced, and a
// worker that dies (a crash inside a library) costs only its row. Both are reported per row.
// Results travel as fixed-size records over a socket pair, so the work's result type must be
// trivially copyable.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace la3 {

enum class RowOutcome : uint8_t { kDone, kOverBudget, kWorkerDied };

struct BudgetedRows {
  std::vector<std::byte> records;   // rows * record_size; a row not kDone keeps zero bytes
  std::vector<RowOutcome> outcomes;  // one per row
  bool ran_in_process = false;       // workers could not be started (fork failed): no budget
  std::string note;                  // why, when ran_in_process
};

// Calls work(row, record) for every row in [0, rows), each in a worker process, with at most
// `workers` processes at once. `work` runs in the child: it must not rely on other threads of
// the caller (they do not exist there) and must not use OpenMP. When fork is impossible the
// rows run in this process without a budget (ran_in_process, note).
BudgetedRows run_rows_with_budget(int64_t rows, size_t record_size,
                                  const std::function<void(int64_t row, std::byte* record)>& work,
                                  double budget_seconds, int workers);

}  // namespace la3
