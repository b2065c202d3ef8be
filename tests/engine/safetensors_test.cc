// safetensors reader/writer: round trips, a file written by the reference implementation,
// and every malformed header the reader must reject with a message naming file and tensor.
#include "engine/io/safetensors.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "engine/io/file_io.h"

namespace la3 {
namespace {

using ::testing::HasSubstr;

std::string fixture_path(const std::string& name) {
  return std::string(LA3_TEST_FIXTURES_DIR) + "/" + name;
}

// A temporary directory removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    char pattern[] = "/tmp/la3_safetensors_XXXXXX";
    path_ = ::mkdtemp(pattern);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Builds a file image from a header JSON text and a data region.
std::string make_image(const std::string& header, const std::string& data) {
  std::string out;
  const uint64_t size = header.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((size >> (8 * i)) & 0xff));
  return out + header + data;
}

TEST(Safetensors, ReadsTheReferenceImplementationsFile) {
  absl::StatusOr<SafetensorsContents> contents = read_safetensors(fixture_path("reference.safetensors"));
  ASSERT_TRUE(contents.ok()) << contents.status();
  EXPECT_EQ(contents->metadata.at("format"), "pt");
  EXPECT_EQ(contents->metadata.at("producer"), "make_safetensors_fixture.py");
  ASSERT_EQ(contents->tensors.size(), 5u);

  const Tensor& f32 = contents->tensors.at("weights.f32");
  EXPECT_EQ(f32.shape(), (Shape{2, 3}));
  EXPECT_EQ(f32.to_vector<float>(), (std::vector<float>{-1.0f, -0.5f, 0.0f, 0.5f, 1.0f, 1.5f}));

  const Tensor& bf = contents->tensors.at("weights.bf16");
  EXPECT_EQ(bf.dtype(), DType::kBF16);
  EXPECT_EQ(bf.to(DType::kF32).to_vector<float>(), (std::vector<float>{1.0f, -2.5f, 3.140625f}));

  const Tensor& f16 = contents->tensors.at("weights.f16");
  EXPECT_EQ(f16.dtype(), DType::kF32);  // widened on load
  EXPECT_EQ(f16.to_vector<float>(), (std::vector<float>{0.333251953125f, -65504.0f}));

  EXPECT_EQ(contents->tensors.at("ids.i64").to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 32127, -100}));
  const Tensor& i32 = contents->tensors.at("count.i32");
  EXPECT_EQ(i32.shape(), (Shape{1, 1}));
  EXPECT_EQ(i32.to_vector<int32_t>(), (std::vector<int32_t>{7}));
}

TEST(Safetensors, RoundTripsEveryDtypeAndStridedViews) {
  TempDir dir;
  const Tensor matrix = Tensor::from_vector<float>({3, 4}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11});
  std::map<std::string, Tensor> tensors = {
      {"a.narrowed", matrix.narrow(1, 1, 2)},  // strided: written as a dense [3, 2]
      {"b.bf16", Tensor::from_vector<float>({2}, {1.5f, -3.0f}).to(DType::kBF16)},
      {"c.i32", Tensor::from_vector<int32_t>({3}, {1, -2, 3})},
      {"d.i64", Tensor::from_vector<int64_t>({1}, {int64_t{1} << 40})},
      {"e.scalar", Tensor::scalar(2.25f)},
      {"f.empty", Tensor::empty({0, 5}, DType::kF32)},
  };
  ASSERT_TRUE(write_safetensors(dir.file("model.safetensors"), tensors, {{"step", "12"}}).ok());
  absl::StatusOr<SafetensorsContents> back = read_safetensors(dir.file("model.safetensors"));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->metadata.at("step"), "12");
  EXPECT_EQ(back->tensors.at("a.narrowed").shape(), (Shape{3, 2}));
  EXPECT_EQ(back->tensors.at("a.narrowed").to_vector<float>(), (std::vector<float>{1, 2, 5, 6, 9, 10}));
  EXPECT_EQ(back->tensors.at("b.bf16").dtype(), DType::kBF16);
  EXPECT_EQ(back->tensors.at("b.bf16").to(DType::kF32).to_vector<float>(), (std::vector<float>{1.5f, -3.0f}));
  EXPECT_EQ(back->tensors.at("c.i32").to_vector<int32_t>(), (std::vector<int32_t>{1, -2, 3}));
  EXPECT_EQ(back->tensors.at("d.i64").to_vector<int64_t>(), (std::vector<int64_t>{int64_t{1} << 40}));
  EXPECT_EQ(back->tensors.at("e.scalar").shape(), Shape{});
  EXPECT_EQ(back->tensors.at("e.scalar").item(), 2.25);
  EXPECT_EQ(back->tensors.at("f.empty").shape(), (Shape{0, 5}));

  // The header is padded to a multiple of 8 bytes so the data region is aligned.
  const std::string bytes = *read_file(dir.file("model.safetensors"));
  uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i) header_size = (header_size << 8) | static_cast<unsigned char>(bytes[static_cast<size_t>(i)]);
  EXPECT_EQ(header_size % 8, 0u);
  // No temporary file is left behind by the atomic write.
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
    (void)entry;
    ++files;
  }
  EXPECT_EQ(files, 1);
}

TEST(Safetensors, FailedWriteLeavesThePreviousFileIntact) {
  TempDir dir;
  const std::string path = dir.file("model.safetensors");
  ASSERT_TRUE(write_safetensors(path, {{"x", Tensor::scalar(1.0f)}}).ok());
  const std::string before = *read_file(path);
  // Writing into a directory that does not exist fails; the existing file stays as it was.
  const absl::Status status = write_safetensors(dir.file("missing/model.safetensors"), {{"x", Tensor::scalar(2.0f)}});
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(std::string(status.message()), HasSubstr("missing/model.safetensors"));
  EXPECT_EQ(*read_file(path), before);
}

TEST(Safetensors, MissingFileIsNotFoundAndNamesThePath) {
  const absl::StatusOr<SafetensorsContents> result = read_safetensors("/nonexistent/dir/model.safetensors");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(result.status().message()), HasSubstr("/nonexistent/dir/model.safetensors"));
}

struct MalformedCase {
  const char* label;
  std::string image;
  const char* expected_message;
};

class SafetensorsRejects : public ::testing::TestWithParam<MalformedCase> {};

TEST_P(SafetensorsRejects, WithAMessageNamingFileAndProblem) {
  const MalformedCase& c = GetParam();
  const absl::StatusOr<SafetensorsContents> result = parse_safetensors(c.image, "bad.safetensors");
  ASSERT_FALSE(result.ok()) << c.label;
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument) << c.label;
  EXPECT_THAT(std::string(result.status().message()), HasSubstr("bad.safetensors")) << c.label;
  EXPECT_THAT(std::string(result.status().message()), HasSubstr(c.expected_message)) << c.label;
}

const std::string kEightFloats(32, '\0');

INSTANTIATE_TEST_SUITE_P(
    Headers, SafetensorsRejects,
    ::testing::Values(
        MalformedCase{"too short", std::string("\x01\x02", 2), "shorter than the 8-byte header length"},
        MalformedCase{"header longer than file", make_image("{}", "").substr(0, 8) + "{", "exceeds the file"},
        MalformedCase{"not json", make_image("{\"a\": [", ""), "not valid JSON"},
        MalformedCase{"not an object", make_image("[1, 2]", ""), "not a JSON object"},
        MalformedCase{"duplicate name",
                      make_image(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                                 R"("w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                                 std::string(8, '\0')),
                      "duplicate key \"w\""},
        MalformedCase{"unknown dtype", make_image(R"({"w":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}})",
                                                  std::string(8, '\0')),
                      "tensor \"w\" has unsupported dtype \"C64\""},
        MalformedCase{"bytes do not match shape",
                      make_image(R"({"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,32]}})", kEightFloats),
                      "tensor \"w\": shape [2,3] of F32 needs 24 bytes but data_offsets cover 32"},
        MalformedCase{"range outside data",
                      make_image(R"({"w":{"dtype":"F32","shape":[16],"data_offsets":[0,64]}})", kEightFloats),
                      "fall outside the data region of 32 bytes"},
        MalformedCase{"overlap",
                      make_image(R"({"a":{"dtype":"F32","shape":[6],"data_offsets":[0,24]},)"
                                 R"("b":{"dtype":"F32","shape":[4],"data_offsets":[16,32]}})",
                                 kEightFloats),
                      "overlaps another tensor"},
        MalformedCase{"hole",
                      make_image(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                 R"("b":{"dtype":"F32","shape":[2],"data_offsets":[24,32]}})",
                                 kEightFloats),
                      "belong to no tensor"},
        MalformedCase{"negative extent",
                      make_image(R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", std::string(4, '\0')),
                      "not a non-negative integer"},
        MalformedCase{"missing field", make_image(R"({"w":{"dtype":"F32","shape":[1]}})", std::string(4, '\0')),
                      "needs dtype, shape and data_offsets"},
        MalformedCase{"metadata not strings", make_image(R"({"__metadata__":{"step":3}})", ""),
                      "__metadata__.step is not a string"}),
    [](const ::testing::TestParamInfo<MalformedCase>& param_info) {
      std::string name = param_info.param.label;
      for (char& ch : name) {
        if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
      }
      return name;
    });

}  // namespace
}  // namespace la3
