// Checkpoints as the hub serves MolT5: pytorch_model.bin (torch.save's zip + pickle), sharded
// .bin and sharded safetensors. Fixtures come from torch/transformers
// (scripts/make_pytorch_fixtures.py); every tensor must equal the golden safetensors model's
// bit for bit and give the same logits. Hostile pickles are refused without running anything;
// broken archives and indexes give errors that name the file and the problem.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <zip.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <tuple>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/autograd/tape.h"
#include "engine/io/file_io.h"
#include "engine/io/safetensors.h"
#include "engine/io/torch_archive.h"
#include "engine/io/torch_pickle.h"
#include "model/checkpoint_weights.h"
#include "model/t5_checkpoint.h"

namespace la3 {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

const std::string kGolden = LA3_GOLDEN_DIR;
const std::string kFixtures = std::string(LA3_TEST_FIXTURES_DIR) + "/pytorch";
const char* const kPwned = "/tmp/la3_pwned_by_fixture";

std::string temp_dir(const std::string& name) {
  const std::string dir = ::testing::TempDir() + "/la3_torch_" + name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::string raw_bytes(const Tensor& tensor) {
  const Tensor dense = tensor.contiguous();
  return std::string(static_cast<const char*>(dense.raw_data()), dense.nbytes());
}

std::string message_of(const absl::Status& status) {
  EXPECT_FALSE(status.ok());
  return std::string(status.message());
}

// Every golden tensor is in `weights` with the same dtype, shape and bytes; anything extra is a
// tied copy of shared.weight.
void expect_same_tensors(const std::map<std::string, Tensor>& golden, const std::map<std::string, Tensor>& loaded,
                         const std::string& what) {
  for (const auto& [name, tensor] : golden) {
    auto found = loaded.find(name);
    ASSERT_NE(found, loaded.end()) << what << " lacks " << name;
    EXPECT_EQ(found->second.dtype(), tensor.dtype()) << what << " " << name;
    EXPECT_EQ(found->second.shape(), tensor.shape()) << what << " " << name;
    EXPECT_TRUE(raw_bytes(found->second) == raw_bytes(tensor)) << what << ": " << name << " differs";
  }
  for (const auto& [name, tensor] : loaded) {
    if (golden.count(name)) continue;
    EXPECT_THAT(name, ::testing::AnyOf("encoder.embed_tokens.weight", "decoder.embed_tokens.weight", "lm_head.weight"))
        << what;
    EXPECT_TRUE(raw_bytes(tensor) == raw_bytes(golden.at("shared.weight"))) << what << ": tied " << name;
  }
}

std::vector<float> logits_of(const T5Model& model) {
  const Tensor ids = Tensor::from_vector<int64_t>({2, 5}, {5, 6, 7, 8, 1, 9, 10, 1, 0, 0});
  const Tensor mask = Tensor::from_vector<int64_t>({2, 5}, {1, 1, 1, 1, 1, 1, 1, 1, 0, 0});
  const Tensor labels = Tensor::from_vector<int64_t>({2, 3}, {8, 9, 1, 4, 1, -100});
  NoGradGuard no_grad;
  return model.logits(ids, mask, labels, {}).to_vector<float>();
}

// ---- zip records: read an archive, write a modified one (libzip) ----
using Records = std::vector<std::pair<std::string, std::string>>;

Records read_records(const std::string& path) {
  int code = 0;
  zip_t* archive = zip_open(path.c_str(), ZIP_RDONLY, &code);
  EXPECT_NE(archive, nullptr) << path;
  Records records;
  if (archive == nullptr) return records;
  for (zip_int64_t i = 0; i < zip_get_num_entries(archive, 0); ++i) {
    zip_stat_t stat;
    zip_stat_index(archive, static_cast<zip_uint64_t>(i), 0, &stat);
    std::string bytes(stat.size, '\0');
    zip_file_t* file = zip_fopen_index(archive, static_cast<zip_uint64_t>(i), 0);
    EXPECT_EQ(zip_fread(file, bytes.data(), stat.size), static_cast<zip_int64_t>(stat.size));
    zip_fclose(file);
    records.emplace_back(stat.name, std::move(bytes));
  }
  zip_discard(archive);
  return records;
}

void write_records(const std::string& path, const Records& records) {
  int code = 0;
  zip_t* archive = zip_open(path.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &code);
  ASSERT_NE(archive, nullptr) << path;
  for (const auto& [name, bytes] : records) {
    zip_source_t* source = zip_source_buffer(archive, bytes.data(), bytes.size(), 0);
    ASSERT_GE(zip_file_add(archive, name.c_str(), source, ZIP_FL_OVERWRITE), 0) << name;
  }
  ASSERT_EQ(zip_close(archive), 0) << path;
}

// The records of the golden v1.1 .bin with `edit` applied, written to `name`.bin.
template <typename Edit>
std::string edited_archive(const std::string& name, Edit edit) {
  Records records = read_records(kFixtures + "/t5_v1_1_bin/pytorch_model.bin");
  edit(records);
  const std::string path = temp_dir("archive_" + name) + "/pytorch_model.bin";
  write_records(path, records);
  return path;
}
std::string& record(Records& records, const std::string& suffix) {
  for (auto& [name, bytes] : records) {
    if (name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) return bytes;
  }
  ADD_FAILURE() << "no record ending in " << suffix;
  static std::string none;
  return none;
}
void erase_record(Records& records, const std::string& suffix) {
  std::erase_if(records, [&](const auto& entry) {
    return entry.first.size() >= suffix.size() &&
           entry.first.compare(entry.first.size() - suffix.size(), suffix.size(), suffix) == 0;
  });
}

TEST(TorchCheckpoint, EveryLayoutMatchesTheSafetensorsGoldenBitForBit) {
  const std::vector<std::tuple<std::string, std::string, std::string>> cases = {
      {"t5_v1_0_bin", "t5_v1_0", "pytorch_model.bin"},
      {"t5_v1_1_bin", "t5_v1_1", "pytorch_model.bin"},
      {"t5_v1_0_bin_sharded", "t5_v1_0", "pytorch_model.bin.index.json"},
      {"t5_v1_1_safetensors_sharded", "t5_v1_1", "model.safetensors.index.json"},
  };
  for (const auto& [fixture, variant, read_from] : cases) {
    SCOPED_TRACE(fixture);
    const SafetensorsContents golden = *read_safetensors(kGolden + "/" + variant + "/model.safetensors");
    absl::StatusOr<CheckpointWeights> weights = read_checkpoint_weights(kFixtures + "/" + fixture);
    ASSERT_TRUE(weights.ok()) << weights.status();
    EXPECT_EQ(weights->path, kFixtures + "/" + fixture + "/" + read_from);
    expect_same_tensors(golden.tensors, weights->tensors, fixture);
    absl::StatusOr<T5Model> expected = load_t5_checkpoint(kGolden + "/" + variant);
    absl::StatusOr<T5Model> loaded = load_t5_checkpoint(kFixtures + "/" + fixture);
    ASSERT_TRUE(expected.ok()) << expected.status();
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    EXPECT_EQ(logits_of(*loaded), logits_of(*expected));
  }
  // Tied weights: v1.0's four names come from one storage, so the .bin is about the size of
  // the safetensors file that stores shared.weight once.
  EXPECT_LT(fs::file_size(kFixtures + "/t5_v1_0_bin/pytorch_model.bin"),
            fs::file_size(kGolden + "/t5_v1_0/model.safetensors") + 40'000);
  // The sharded fixtures really are sharded.
  int shards = 0;
  for (const auto& entry : fs::directory_iterator(kFixtures + "/t5_v1_0_bin_sharded")) {
    shards += entry.path().filename().string().starts_with("pytorch_model-");
  }
  EXPECT_GE(shards, 2);
}

TEST(TorchCheckpoint, HalfAndBfloat16StateDictsAsOlderTransformersSavedThem) {
  // float16: widened to f32 exactly, as the safetensors reader widens the same values.
  absl::StatusOr<CheckpointWeights> half = read_checkpoint_weights(kFixtures + "/t5_v1_0_f16_state_dict");
  ASSERT_TRUE(half.ok()) << half.status();
  const SafetensorsContents reference = *read_safetensors(kFixtures + "/reference_f16.safetensors");
  ASSERT_EQ(half->tensors.size(), reference.tensors.size());
  for (const auto& [name, tensor] : reference.tensors) {
    ASSERT_TRUE(half->tensors.count(name)) << name;
    EXPECT_EQ(half->tensors.at(name).dtype(), DType::kF32);
    EXPECT_TRUE(raw_bytes(half->tensors.at(name)) == raw_bytes(tensor)) << name;
  }
  // bfloat16 stays bf16: torch's rounding of the golden f32 weights, bit for bit ours.
  absl::StatusOr<CheckpointWeights> bf16 = read_checkpoint_weights(kFixtures + "/t5_v1_1_bf16_state_dict");
  ASSERT_TRUE(bf16.ok()) << bf16.status();
  std::map<std::string, Tensor> golden;
  const SafetensorsContents golden_f32 = *read_safetensors(kGolden + "/t5_v1_1/model.safetensors");
  for (const auto& [name, tensor] : golden_f32.tensors) {
    golden[name] = tensor.to(DType::kBF16);
  }
  expect_same_tensors(golden, bf16->tensors, "bf16 state dict");
  for (const char* fixture : {"/t5_v1_0_f16_state_dict", "/t5_v1_1_bf16_state_dict"}) {
    absl::StatusOr<T5Model> model = load_t5_checkpoint(kFixtures + fixture);
    ASSERT_TRUE(model.ok()) << model.status();
    for (float value : logits_of(*model)) ASSERT_TRUE(std::isfinite(value));
  }
}

TEST(TorchCheckpoint, ViewsOffsetsAndStridesOfSharedStorages) {
  const SafetensorsContents reference = *read_safetensors(kFixtures + "/views_reference.safetensors");
  for (const char* file : {"/views.bin", "/views_protocol4.bin"}) {
    SCOPED_TRACE(file);
    absl::StatusOr<std::map<std::string, Tensor>> views = read_torch_archive(kFixtures + file);
    ASSERT_TRUE(views.ok()) << views.status();
    ASSERT_EQ(views->size(), reference.tensors.size());
    for (const auto& [name, tensor] : reference.tensors) {
      ASSERT_TRUE(views->count(name)) << name;
      EXPECT_EQ(views->at(name).shape(), tensor.shape()) << name;
      EXPECT_EQ(views->at(name).dtype(), tensor.dtype()) << name;
      EXPECT_TRUE(raw_bytes(views->at(name)) == raw_bytes(tensor)) << name;
    }
  }
  // The transpose really is strided in the file (so the gather is what is tested).
  Records records = read_records(kFixtures + "/views.bin");
  absl::StatusOr<std::vector<TorchTensorRecord>> parsed = parse_torch_pickle(record(records, "/data.pkl"), "views");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  for (const TorchTensorRecord& r : *parsed) {
    if (r.name == "transposed") {
      EXPECT_EQ(r.strides, (std::vector<int64_t>{1, 4}));
    }
    if (r.name == "column") {
      EXPECT_EQ(r.storage_offset, 2);
    }
  }
}

TEST(TorchCheckpoint, MaliciousPicklesAreRefusedNamingTheGlobalAndRunNothing) {
  fs::remove(kPwned);
  // Names as the files spell them: pickle protocol 2 writes Python 2 module names
  // (builtins -> __builtin__, subprocess.Popen -> commands.Popen), which a Python 3 unpickler
  // maps back before calling them.
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"os_system", "posix.system"},
      {"builtins_eval", "__builtin__.eval"},
      {"subprocess_popen", "commands.Popen"},
      {"torch_load", "torch.serialization.load"},
  };
  for (const auto& [file, global] : cases) {
    const std::string path = kFixtures + "/malicious/" + file + ".bin";
    const std::string message = message_of(read_torch_archive(path).status());
    EXPECT_THAT(message, HasSubstr(path + " ("));
    EXPECT_THAT(message, HasSubstr("/data.pkl): byte "));
    EXPECT_THAT(message, HasSubstr("refusing global \"" + global + "\"")) << message;
  }
  // Through the checkpoint loader as init_checkpoint and `engine generate` use it.
  const std::string message = message_of(load_t5_checkpoint(kFixtures + "/malicious/checkpoint").status());
  EXPECT_THAT(message, HasSubstr("malicious/checkpoint/pytorch_model.bin"));
  EXPECT_THAT(message, HasSubstr("refusing global \"posix.system\""));
  EXPECT_FALSE(fs::exists(kPwned));
}

TEST(TorchCheckpoint, BrokenArchivesGiveClearErrors) {
  const std::string original = kFixtures + "/t5_v1_1_bin/pytorch_model.bin";
  // Truncated: the central directory is gone.
  const std::string truncated = temp_dir("truncated") + "/pytorch_model.bin";
  const std::string bytes = *read_file(original);
  ASSERT_TRUE(write_file_atomically(truncated, bytes.substr(0, bytes.size() / 2)).ok());
  EXPECT_THAT(message_of(read_torch_archive(truncated).status()), HasSubstr("not a readable zip archive"));
  ASSERT_TRUE(write_file_atomically(truncated, "garbage").ok());
  EXPECT_THAT(message_of(read_torch_archive(truncated).status()), HasSubstr("not a torch.save zip archive"));
  EXPECT_EQ(read_torch_archive("/nonexistent/pytorch_model.bin").status().code(), absl::StatusCode::kNotFound);
  // The pre-1.6 format.
  EXPECT_THAT(message_of(read_torch_archive(kFixtures + "/unsupported/legacy.bin").status()),
              HasSubstr("legacy torch.save format (torch < 1.6)"));
  // Storages of dtypes T5 weights never have.
  EXPECT_THAT(message_of(read_torch_archive(kFixtures + "/unsupported/int64.bin").status()),
              HasSubstr("storage type \"torch.LongStorage\" is not supported"));
  EXPECT_THAT(message_of(read_torch_archive(kFixtures + "/unsupported/float64.bin").status()),
              HasSubstr("storage type \"torch.DoubleStorage\" is not supported"));

  // No data.pkl; a storage record missing; a storage record too short; a record renamed.
  EXPECT_THAT(message_of(read_torch_archive(edited_archive("no_pickle", [](Records& r) { erase_record(r, "/data.pkl"); }))
                             .status()),
              HasSubstr("no <name>/data.pkl record"));
  const std::string no_storage = edited_archive("no_storage", [](Records& r) { erase_record(r, "/data/0"); });
  const absl::Status missing = read_torch_archive(no_storage).status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(message_of(missing), HasSubstr("needs storage record "));
  EXPECT_THAT(message_of(missing), HasSubstr("/data/0, which the archive lacks"));
  const std::string short_storage = edited_archive("short_storage", [](Records& r) {
    std::string& data = record(r, "/data/0");
    data.resize(data.size() - 4);
  });
  EXPECT_THAT(message_of(read_torch_archive(short_storage).status()), HasSubstr("/data/0 holds "));
  EXPECT_THAT(message_of(read_torch_archive(short_storage).status()), HasSubstr("elements of torch.FloatStorage"));
  // Hostile data.pkl inside a valid archive: unknown opcode, deep nesting, huge memo index.
  const std::vector<std::pair<std::string, std::string>> pickles = {
      {std::string("\x80\x02\xff", 3), "unsupported pickle opcode 0xff"},
      {std::string("\x80\x02", 2) + std::string(1'000'000, '('), "more than 256 nested MARKs"},
      {std::string("\x80\x02}r\xff\xff\xff\x7f.", 9), "memo index 2147483647 exceeds the limit"},
  };
  for (const auto& entry : pickles) {
    const std::string& pickle = entry.first;  // not a structured binding: clang 14 cannot capture those
    const std::string& expected = entry.second;
    const std::string path = edited_archive("hostile", [&](Records& r) { record(r, "/data.pkl") = pickle; });
    const std::string message = message_of(read_torch_archive(path).status());
    EXPECT_THAT(message, HasSubstr(path + " ("));
    EXPECT_THAT(message, HasSubstr(expected));
  }
  // Version and byte order.
  EXPECT_THAT(message_of(read_torch_archive(edited_archive("no_version", [](Records& r) {
                                              erase_record(r, "/version");
                                            })).status()),
              HasSubstr("no readable"));
  EXPECT_THAT(message_of(read_torch_archive(edited_archive("big_endian", [](Records& r) {
                                              erase_record(r, "/byteorder");
                                              r.emplace_back(r.front().first.substr(0, r.front().first.find('/')) +
                                                                 "/byteorder",
                                                             "big");
                                            })).status()),
              HasSubstr("byte order \"big\": only little-endian archives are read"));
}

TEST(TorchCheckpoint, LoaderChecksApplyToBinCheckpoints) {
  // A NaN in the .bin is refused naming the tensor and the file.
  const std::string dir = temp_dir("nan");
  fs::copy_file(kFixtures + "/t5_v1_1_bin/config.json", dir + "/config.json");
  Records records = read_records(kFixtures + "/t5_v1_1_bin/pytorch_model.bin");
  absl::StatusOr<std::vector<TorchTensorRecord>> parsed = parse_torch_pickle(record(records, "/data.pkl"), "pkl");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  const std::string name = "encoder.block.0.layer.0.SelfAttention.q.weight";
  bool patched = false;
  for (const TorchTensorRecord& r : *parsed) {
    if (r.name != name) continue;
    const float nan = std::numeric_limits<float>::quiet_NaN();
    std::memcpy(record(records, "/data/" + r.storage_key).data() + (r.storage_offset + 5) * 4, &nan, 4);
    patched = true;
  }
  ASSERT_TRUE(patched);
  write_records(dir + "/pytorch_model.bin", records);
  const absl::Status nan = load_t5_checkpoint(dir).status();
  EXPECT_EQ(nan.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(message_of(nan), HasSubstr(dir + "/pytorch_model.bin: tensor \"" + name + "\""));
  EXPECT_THAT(message_of(nan), HasSubstr("at element 5"));
  // The wrong config for these weights: shapes and parameter names are checked as for safetensors.
  fs::copy_file(kFixtures + "/t5_v1_1_bin/pytorch_model.bin", dir + "/pytorch_model.bin", fs::copy_options::overwrite_existing);
  fs::copy_file(kGolden + "/t5_v1_0/config.json", dir + "/config.json", fs::copy_options::overwrite_existing);
  const std::string wrong = message_of(load_t5_checkpoint(dir).status());
  EXPECT_THAT(wrong, HasSubstr(dir + "/pytorch_model.bin: "));
  EXPECT_THAT(wrong, HasSubstr("missing parameter"));
  // Preference: model.safetensors first, as transformers; with neither, a clear error.
  fs::copy_file(kGolden + "/t5_v1_0/model.safetensors", dir + "/model.safetensors");
  fs::copy_file(kFixtures + "/malicious/os_system.bin", dir + "/pytorch_model.bin", fs::copy_options::overwrite_existing);
  EXPECT_TRUE(load_t5_checkpoint(dir).ok());
  fs::remove(dir + "/model.safetensors");
  EXPECT_THAT(message_of(load_t5_checkpoint(dir).status()), HasSubstr("refusing global"));
  fs::remove(dir + "/pytorch_model.bin");
  const absl::Status none = load_t5_checkpoint(dir).status();
  EXPECT_EQ(none.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(message_of(none), HasSubstr("no weights: expected model.safetensors, model.safetensors.index.json, "
                                          "pytorch_model.bin or pytorch_model.bin.index.json"));
}

// A copy of a sharded fixture whose index (and shards) a test may break.
struct ShardedCopy {
  std::string dir, index_path;
  nlohmann::json index;
  ShardedCopy(const std::string& fixture, const std::string& index_name, const std::string& name) {
    dir = temp_dir("sharded_" + name);
    fs::copy(kFixtures + "/" + fixture, dir, fs::copy_options::recursive | fs::copy_options::overwrite_existing);
    index_path = dir + "/" + index_name;
    index = nlohmann::json::parse(*read_file(index_path));
  }
  void save() const { ASSERT_TRUE(write_file_atomically(index_path, index.dump(1)).ok()); }
  std::string first_tensor_of(const std::string& shard) const {
    for (const auto& [tensor, file] : index["weight_map"].items()) {
      if (file == shard) return tensor;
    }
    return "";
  }
  std::vector<std::string> shards() const {
    std::set<std::string> names;
    for (const auto& [tensor, file] : index["weight_map"].items()) names.insert(file.get<std::string>());
    return {names.begin(), names.end()};
  }
  std::string error() const { return message_of(read_checkpoint_weights(dir).status()); }
};

TEST(ShardedCheckpoint, BrokenIndexesGiveClearErrors) {
  for (const auto& [fixture, index_name] : std::vector<std::pair<std::string, std::string>>{
           {"t5_v1_0_bin_sharded", "pytorch_model.bin.index.json"},
           {"t5_v1_1_safetensors_sharded", "model.safetensors.index.json"}}) {
    SCOPED_TRACE(fixture);
    {  // A shard that is not there.
      ShardedCopy copy(fixture, index_name, "missing");
      ASSERT_GE(copy.shards().size(), 2u);
      fs::remove(copy.dir + "/" + copy.shards().back());
      const absl::Status status = read_checkpoint_weights(copy.dir).status();
      EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
      EXPECT_THAT(message_of(status), HasSubstr("shard \"" + copy.shards().back() + "\" named by the weight map does not exist"));
    }
    for (const std::string escape : {"../pytorch_model.bin", "/etc/passwd", "sub/shard.bin", "..", "a\\b"}) {
      ShardedCopy copy(fixture, index_name, "escape");
      const std::string tensor = copy.first_tensor_of(copy.shards().front());
      copy.index["weight_map"][tensor] = escape;
      copy.save();
      EXPECT_THAT(copy.error(), HasSubstr(copy.index_path + ": weight_map[\"" + tensor + "\"] names shard \"" + escape +
                                          "\": a shard must be a plain file name"));
    }
    {  // The weight map puts a tensor in a shard that does not hold it.
      ShardedCopy copy(fixture, index_name, "moved");
      const std::string tensor = copy.first_tensor_of(copy.shards().front());
      copy.index["weight_map"][tensor] = copy.shards().back();
      copy.save();
      EXPECT_THAT(copy.error(), HasSubstr("tensor \"" + tensor + "\" is in shard "));
    }
    {  // A tensor the weight map does not list.
      ShardedCopy copy(fixture, index_name, "unlisted");
      const std::string tensor = copy.first_tensor_of(copy.shards().front());
      copy.index["weight_map"].erase(tensor);
      copy.save();
      EXPECT_THAT(copy.error(), HasSubstr("holds tensor \"" + tensor + "\", which the weight map does not list"));
    }
    {  // A repeated key in the weight map's JSON.
      ShardedCopy copy(fixture, index_name, "duplicate_key");
      std::string text = *read_file(copy.index_path);
      const std::string tensor = copy.first_tensor_of(copy.shards().front());
      const std::string entry = "\"" + tensor + "\": \"" + copy.shards().front() + "\"";
      const size_t at = text.find("\"weight_map\": {");
      ASSERT_NE(at, std::string::npos);
      text.insert(at + std::string("\"weight_map\": {").size(), entry + ", ");
      ASSERT_TRUE(write_file_atomically(copy.index_path, text).ok());
      EXPECT_THAT(copy.error(), HasSubstr("duplicate key \"" + tensor + "\""));
    }
  }
  // Safetensors shards can be rewritten here: a tensor in two shards, and one missing from
  // the shard the weight map names.
  {
    ShardedCopy copy("t5_v1_1_safetensors_sharded", "model.safetensors.index.json", "twice");
    const std::string first = copy.shards().front(), last = copy.shards().back();
    const std::string tensor = copy.first_tensor_of(first);
    SafetensorsContents shard = *read_safetensors(copy.dir + "/" + last);
    shard.tensors[tensor] = read_safetensors(copy.dir + "/" + first)->tensors.at(tensor);
    ASSERT_TRUE(write_safetensors(copy.dir + "/" + last, shard.tensors).ok());
    EXPECT_THAT(copy.error(), HasSubstr("tensor \"" + tensor + "\" is in two shards: " + copy.dir + "/" + first + " and " +
                                        copy.dir + "/" + last));
  }
  {
    ShardedCopy copy("t5_v1_1_safetensors_sharded", "model.safetensors.index.json", "absent");
    const std::string last = copy.shards().back();
    const std::string tensor = copy.first_tensor_of(last);
    SafetensorsContents shard = *read_safetensors(copy.dir + "/" + last);
    shard.tensors.erase(tensor);
    ASSERT_TRUE(write_safetensors(copy.dir + "/" + last, shard.tensors).ok());
    EXPECT_THAT(copy.error(), HasSubstr("the weight map puts tensor \"" + tensor + "\" in shard " + last +
                                       ", which does not hold it"));
  }
}

}  // namespace
}  // namespace la3
