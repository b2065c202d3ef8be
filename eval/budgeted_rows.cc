#include "eval/budgeted_rows.h"

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>

namespace la3 {

namespace {

using Clock = std::chrono::steady_clock;

// Writes or reads exactly `size` bytes; false on EOF or error (the peer died).
bool send_all(int fd, const void* data, size_t size) {
  const auto* bytes = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::send(fd, bytes, size, MSG_NOSIGNAL);  // never SIGPIPE the caller
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

bool receive_all(int fd, void* data, size_t size) {
  auto* bytes = static_cast<char*>(data);
  while (size > 0) {
    const ssize_t n = ::recv(fd, bytes, size, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

// The child: reads row numbers, answers (row, record), until -1 or the parent goes away.
[[noreturn]] void worker_loop(int fd, size_t record_size, const std::function<void(int64_t, std::byte*)>& work) {
  std::vector<std::byte> message(sizeof(int64_t) + record_size);
  int64_t row = 0;
  while (receive_all(fd, &row, sizeof row) && row >= 0) {
    std::fill(message.begin(), message.end(), std::byte{0});
    std::memcpy(message.data(), &row, sizeof row);
    work(row, message.data() + sizeof row);
    if (!send_all(fd, message.data(), message.size())) break;
  }
  ::_exit(0);  // no atexit handlers or destructors of the parent's state
}

struct Worker {
  pid_t pid = -1;
  int fd = -1;
  int64_t row = -1;  // the row it works on, -1 when idle
  Clock::time_point deadline;
};

bool start_worker(Worker& worker, size_t record_size, const std::function<void(int64_t, std::byte*)>& work,
                  const std::vector<Worker>& others) {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) return false;
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    return false;
  }
  if (pid == 0) {
    ::close(fds[0]);
    for (const Worker& other : others) {
      if (other.fd >= 0) ::close(other.fd);  // siblings' sockets: EOF must reach the parent only
    }
    worker_loop(fds[1], record_size, work);
  }
  ::close(fds[1]);
  worker.pid = pid;
  worker.fd = fds[0];
  worker.row = -1;
  return true;
}

void stop_worker(Worker& worker, bool kill) {
  if (worker.pid < 0) return;
  if (kill) {
    ::kill(worker.pid, SIGKILL);
  } else {
    const int64_t quit = -1;
    send_all(worker.fd, &quit, sizeof quit);
  }
  ::close(worker.fd);
  int status = 0;
  while (::waitpid(worker.pid, &status, 0) < 0 && errno == EINTR) {
  }
  worker.pid = -1;
  worker.fd = -1;
  worker.row = -1;
}

}  // namespace

BudgetedRows run_rows_with_budget(int64_t rows, size_t record_size,
                                  const std::function<void(int64_t row, std::byte* record)>& work,
                                  double budget_seconds, int workers) {
  BudgetedRows result;
  result.records.assign(static_cast<size_t>(rows) * record_size, std::byte{0});
  result.outcomes.assign(static_cast<size_t>(rows), RowOutcome::kDone);
  if (rows <= 0) return result;
  const auto budget = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(budget_seconds));
  std::vector<Worker> pool(static_cast<size_t>(std::clamp<int64_t>(workers, 1, rows)));
  for (size_t w = 0; w < pool.size(); ++w) {
    if (!start_worker(pool[w], record_size, work, pool)) {
      const int error = errno;
      for (Worker& started : pool) stop_worker(started, /*kill=*/true);
      result.ran_in_process = true;
      result.note = std::string("worker processes could not be started (") + std::strerror(error) +
                    "): rows were scored in this process without a time budget";
      for (int64_t row = 0; row < rows; ++row) work(row, result.records.data() + static_cast<size_t>(row) * record_size);
      return result;
    }
  }
  int64_t next_row = 0, finished = 0;
  std::vector<std::byte> message(sizeof(int64_t) + record_size);
  auto assign = [&](Worker& worker) {
    while (worker.row < 0 && next_row < rows) {
      const int64_t row = next_row++;
      if (send_all(worker.fd, &row, sizeof row)) {
        worker.row = row;
        worker.deadline = Clock::now() + budget;
        return;
      }
      // The worker is gone before taking the row: replace it and retry the row.
      --next_row;
      stop_worker(worker, /*kill=*/true);
      if (!start_worker(worker, record_size, work, pool)) return;
    }
  };
  // A row whose worker overran or died: record it, replace the worker.
  auto fail_row = [&](Worker& worker, RowOutcome outcome) {
    result.outcomes[static_cast<size_t>(worker.row)] = outcome;
    ++finished;
    stop_worker(worker, /*kill=*/true);
    start_worker(worker, record_size, work, pool);
  };
  for (Worker& worker : pool) assign(worker);
  while (finished < rows) {
    std::vector<pollfd> fds;
    std::vector<Worker*> owners;
    Clock::time_point earliest = Clock::time_point::max();
    for (Worker& worker : pool) {
      if (worker.row < 0) continue;
      fds.push_back(pollfd{worker.fd, POLLIN, 0});
      owners.push_back(&worker);
      earliest = std::min(earliest, worker.deadline);
    }
    if (fds.empty()) {
      // Every worker slot failed to restart: finish in-process rather than lose the rows.
      for (; next_row < rows; ++next_row, ++finished) {
        work(next_row, result.records.data() + static_cast<size_t>(next_row) * record_size);
      }
      result.note = "worker processes could not be restarted: the last rows were scored without a time budget";
      break;
    }
    const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(earliest - Clock::now()).count();
    const int ready = ::poll(fds.data(), fds.size(), static_cast<int>(std::clamp<int64_t>(wait + 1, 0, 60000)));
    if (ready < 0 && errno != EINTR) {
      const int error = errno;
      // Cannot wait on the workers any more: their rows are lost to them, the rest run here.
      for (Worker& worker : pool) {
        if (worker.row >= 0) result.outcomes[static_cast<size_t>(worker.row)] = RowOutcome::kWorkerDied;
        stop_worker(worker, /*kill=*/true);
      }
      for (; next_row < rows; ++next_row) work(next_row, result.records.data() + static_cast<size_t>(next_row) * record_size);
      result.note = std::string("poll failed (") + std::strerror(error) + "): the last rows were scored without a time budget";
      break;
    }
    const Clock::time_point now = Clock::now();
    for (size_t i = 0; i < fds.size(); ++i) {
      Worker& worker = *owners[i];
      if (fds[i].revents != 0) {
        int64_t row = -1;
        if (receive_all(worker.fd, message.data(), message.size()) &&
            (std::memcpy(&row, message.data(), sizeof row), row == worker.row)) {
          std::memcpy(result.records.data() + static_cast<size_t>(row) * record_size, message.data() + sizeof row,
                      record_size);
          ++finished;
          worker.row = -1;
        } else {
          fail_row(worker, RowOutcome::kWorkerDied);
        }
      } else if (now >= worker.deadline) {
        fail_row(worker, RowOutcome::kOverBudget);
      }
      if (worker.pid >= 0) assign(worker);
    }
  }
  for (Worker& worker : pool) stop_worker(worker, /*kill=*/false);
  return result;
}

}  // namespace la3
