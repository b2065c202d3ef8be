// The journal (torn last line, corrupt lines, locking), SHA-256 and the rate limiter.
#include "llm_client/journal.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <thread>

#include "engine/io/file_io.h"
#include "llm_client/hashing.h"
#include "llm_client/rate_limiter.h"

namespace la3::llm {
namespace {

std::string temp_path(const std::string& name) {
  const std::string path = ::testing::TempDir() + "la3_journal_" + name + "_" + std::to_string(::getpid()) + ".jsonl";
  std::filesystem::remove(path);
  return path;
}

JournalEntry entry(int sample, const std::string& text) {
  JournalEntry e;
  e.cid = "92470518";
  e.caption_sha256 = sha256_hex("caption");
  e.template_sha256 = sha256_hex("template");
  e.model = "test-model";
  e.sample = sample;
  e.kept = true;
  e.text = text;
  e.attempts = 1;
  return e;
}

TEST(Journal, AppendsAndReloads) {
  const std::string path = temp_path("reload");
  {
    auto journal = Journal::open(path, 0);
    ASSERT_TRUE(journal.ok()) << journal.status();
    ASSERT_TRUE((*journal)->append(entry(0, "first, with \"quotes\"\nand a newline")).ok());
    JournalEntry g = entry(1, "");
    g.type = "gave_up";
    ASSERT_TRUE((*journal)->append(g).ok());
  }
  auto journal = Journal::open(path, 0);
  ASSERT_TRUE(journal.ok()) << journal.status();
  ASSERT_EQ((*journal)->entries().size(), 2u);
  EXPECT_EQ((*journal)->entries()[0].text, "first, with \"quotes\"\nand a newline");
  EXPECT_EQ((*journal)->entries()[1].type, "gave_up");
}

TEST(Journal, CutsOffATornLastLine) {
  const std::string path = temp_path("torn");
  {
    auto journal = Journal::open(path, 0);
    ASSERT_TRUE(journal.ok());
    for (int s = 0; s < 3; ++s) ASSERT_TRUE((*journal)->append(entry(s, "text")).ok());
  }
  std::string text = *read_file(path);
  const std::string intact = text;
  const std::string torn_line = entry(3, "torn").to_json_line();
  text.append(torn_line.data(), 30);  // kill -9 mid-write
  ASSERT_TRUE(write_file_atomically(path, text).ok());
  JournalOpenReport report;
  auto journal = Journal::open(path, 0, &report);
  ASSERT_TRUE(journal.ok()) << journal.status();
  EXPECT_EQ(report.entries, 3);
  EXPECT_EQ(report.torn_bytes, 30);
  EXPECT_EQ(*read_file(path), intact);
  ASSERT_TRUE((*journal)->append(entry(3, "whole")).ok());
  journal->reset();
  auto reopened = Journal::open(path, 0);
  ASSERT_TRUE(reopened.ok());
  EXPECT_EQ((*reopened)->entries().size(), 4u);
}

TEST(Journal, ACorruptCompleteLineIsAnErrorNamingTheLine) {
  const std::string path = temp_path("corrupt");
  ASSERT_TRUE(write_file_atomically(path, entry(0, "a").to_json_line() + "{\"type\": 3}\n").ok());
  auto journal = Journal::open(path, 0);
  ASSERT_FALSE(journal.ok());
  EXPECT_NE(std::string(journal.status().message()).find(path + ":2: corrupt journal line"), std::string::npos)
      << journal.status();
}

TEST(Journal, OneWriterAtATime) {
  const std::string path = temp_path("lock");
  auto first = Journal::open(path, 0);
  ASSERT_TRUE(first.ok());
  auto second = Journal::open(path, 0);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(std::string(second.status().message()).find("in use by another"), std::string::npos);
}

TEST(Hashing, Sha256KnownVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(RateLimiter, BurstThenSteadyRate) {
  using Clock = RateLimiter::Clock;
  RateLimiter limiter(600);  // 10/s, burst 10
  const Clock::time_point t0 = Clock::now();
  int admitted = 0;
  while (limiter.try_acquire(1, t0)) ++admitted;
  EXPECT_EQ(admitted, 10);
  EXPECT_NEAR(limiter.seconds_until_available(1, t0), 0.1, 1e-9);
  EXPECT_TRUE(limiter.try_acquire(1, t0 + std::chrono::milliseconds(100)));
  EXPECT_FALSE(limiter.try_acquire(1, t0 + std::chrono::milliseconds(150)));
  // A cost above the burst runs once the bucket is full and leaves a debt.
  RateLimiter tokens(60);  // 1/s, burst 1
  EXPECT_TRUE(tokens.try_acquire(5, t0));
  EXPECT_NEAR(tokens.seconds_until_available(1, t0), 5.0, 1e-9);
  tokens.adjust(4);  // the reply used 1 token, not 5
  EXPECT_NEAR(tokens.seconds_until_available(1, t0), 1.0, 1e-9);
  EXPECT_TRUE(RateLimiter(0).try_acquire(1e9, t0));
}

// What Journal::open does with the bytes, in memory (what fuzz/ feeds): the torn last line
// lies past the complete size, blank lines are skipped, a corrupt line names source:line.
TEST(Journal, ParsesCompleteLinesInMemory) {
  const std::string lines = entry(0, "a").to_json_line() + "\n" + entry(1, "b").to_json_line();
  EXPECT_EQ(journal_complete_size(lines), lines.size());
  EXPECT_EQ(journal_complete_size(lines + "{\"type\": \"verd"), lines.size());
  EXPECT_EQ(journal_complete_size("no newline at all"), 0u);
  EXPECT_EQ(journal_complete_size(""), 0u);
  absl::StatusOr<std::vector<JournalEntry>> entries = parse_journal_lines(lines, "j.jsonl");
  ASSERT_TRUE(entries.ok()) << entries.status();
  ASSERT_EQ(entries->size(), 2u);
  EXPECT_EQ((*entries)[1].text, "b");
  absl::StatusOr<std::vector<JournalEntry>> corrupt = parse_journal_lines(lines + "{\"type\": 3}\n", "j.jsonl");
  ASSERT_FALSE(corrupt.ok());
  EXPECT_NE(corrupt.status().message().find("j.jsonl:4: corrupt journal line"), std::string::npos) << corrupt.status();
}

// Counts must be JSON integers that fit: a float (1e300 once made from_json convert a double
// out of int's range, undefined behaviour; found by fuzz/augment_journal_fuzz.cc), a fraction
// or a number past the field's width is a corrupt line naming the field.
TEST(Journal, NumbersThatAreNotIntegersOfTheFieldsWidthAreCorrupt) {
  const std::string head =
      R"({"type": "verdict", "cid": "1", "caption_sha256": "a", "template_sha256": "b", "model": "m", "kept": true, )"
      R"("text": "t", )";
  for (const std::string& numbers : {std::string(R"("sample": 1e300})"), std::string(R"("sample": 0.5})"),
                                     std::string(R"("sample": 4294967296})"), std::string(R"("sample": -2147483649})"),
                                     std::string(R"("sample": 0, "attempts": 1e10})"),
                                     std::string(R"("sample": 0, "prompt_tokens": 1.5})"),
                                     std::string(R"("sample": 0, "completion_tokens": 18446744073709551615})")}) {
    absl::StatusOr<JournalEntry> e = JournalEntry::from_json(head + numbers);
    ASSERT_FALSE(e.ok()) << numbers;
    EXPECT_EQ(e.status().code(), absl::StatusCode::kDataLoss);
    EXPECT_NE(e.status().message().find("expected an integer that fits"), std::string::npos) << e.status();
  }
  absl::StatusOr<JournalEntry> e = JournalEntry::from_json(head + R"("sample": -3, "prompt_tokens": 9007199254740993})");
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->sample, -3);
  EXPECT_EQ(e->prompt_tokens, 9007199254740993);
  EXPECT_EQ(e->attempts, 0);
  EXPECT_FALSE(JournalEntry::from_json(R"({"type": "gave_up", "cid": "1", "caption_sha256": "a", "template_sha256": "b", "model": "m"})").ok());
}

}  // namespace
}  // namespace la3::llm
