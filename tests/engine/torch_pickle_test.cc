// The strict torch.save pickle reader on hand-written byte strings: the state dict layout
// torch.save emits is understood; every global outside the whitelist, every opcode outside
// the subset, and every bound (marks, nesting, memo, strings, storage extent) gives an error
// naming the byte offset, never a crash.
#include "engine/io/torch_pickle.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace la3 {
namespace {

using ::testing::HasSubstr;

// ---- a tiny pickle writer (protocol 2 opcodes, as torch.save emits them) ----
std::string le32(uint32_t value) {
  std::string out;
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xffu));
  return out;
}
std::string str(const std::string& text) { return "X" + le32(static_cast<uint32_t>(text.size())) + text; }
std::string global(const std::string& module, const std::string& name) { return "c" + module + "\n" + name + "\n"; }
std::string integer(int32_t value) { return "J" + le32(static_cast<uint32_t>(value)); }
std::string int_tuple(const std::vector<int32_t>& values) {
  std::string out = "(";
  for (int32_t v : values) out += integer(v);
  return out + "t";
}
const std::string kEmptyOrderedDict = global("collections", "OrderedDict") + ")R";

// _rebuild_tensor_v2((storage pid), offset, sizes, strides, False, OrderedDict())
std::string tensor(const std::string& key, int32_t numel, int32_t offset, const std::vector<int32_t>& sizes,
                   const std::vector<int32_t>& strides, const std::string& storage_type = "FloatStorage") {
  return global("torch._utils", "_rebuild_tensor_v2") + "((" + str("storage") + global("torch", storage_type) + str(key) +
         str("cpu") + integer(numel) + "tQ" + integer(offset) + int_tuple(sizes) + int_tuple(strides) + "\x89" +
         kEmptyOrderedDict + "tR";
}
std::string state_dict(const std::string& items) { return std::string("\x80\x02}(", 4) + items + "u."; }

absl::StatusOr<std::vector<TorchTensorRecord>> parse(const std::string& bytes) { return parse_torch_pickle(bytes, "test.pkl"); }
std::string error_of(const std::string& bytes) {
  absl::StatusOr<std::vector<TorchTensorRecord>> result = parse(bytes);
  EXPECT_FALSE(result.ok()) << "accepted a pickle that should be refused";
  return result.ok() ? "" : std::string(result.status().message());
}

TEST(TorchPickle, ReadsAStateDictAsTorchSaveWritesIt) {
  // An OrderedDict state dict with memo puts and gets, a shared storage, a BUILD of
  // _metadata and a parameter wrapper: the shapes torch.save produces.
  const std::string bytes =
      std::string("\x80\x02", 2) + kEmptyOrderedDict + std::string("q\x00(", 3) + str("a.weight") +
      tensor("0", 12, 0, {3, 4}, {4, 1}) + "q\x01" + str("b.weight") + "h\x01" + str("c.view") +
      tensor("0", 12, 2, {3}, {4}, "FloatStorage") + str("d.half") + tensor("7", 2, 0, {2}, {1}, "HalfStorage") +
      str("e.param") + global("torch._utils", "_rebuild_parameter") + "(" + tensor("1", 1, 0, {}, {}, "BFloat16Storage") +
      "\x88" + kEmptyOrderedDict + "tR" + "u}" + str("_metadata") + "}" + "sb.";
  absl::StatusOr<std::vector<TorchTensorRecord>> records = parse(bytes);
  ASSERT_TRUE(records.ok()) << records.status();
  ASSERT_EQ(records->size(), 5u);
  const TorchTensorRecord& a = (*records)[0];
  EXPECT_EQ(a.name, "a.weight");
  EXPECT_EQ(a.storage_key, "0");
  EXPECT_EQ(a.storage_numel, 12);
  EXPECT_EQ(a.sizes, (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(a.strides, (std::vector<int64_t>{4, 1}));
  EXPECT_EQ((*records)[1].name, "b.weight");  // the memoised tensor again (tied weights)
  EXPECT_EQ((*records)[1].storage_key, "0");
  EXPECT_EQ((*records)[2].storage_offset, 2);
  EXPECT_EQ((*records)[2].strides, (std::vector<int64_t>{4}));
  EXPECT_EQ((*records)[3].storage_type, TorchStorageType::kHalf);
  EXPECT_EQ((*records)[4].storage_type, TorchStorageType::kBFloat16);
  EXPECT_TRUE((*records)[4].sizes.empty());
}

TEST(TorchPickle, RefusesEveryGlobalOutsideTheWhitelistNamingIt) {
  for (const auto& [module, name] : std::vector<std::pair<std::string, std::string>>{
           {"os", "system"}, {"posix", "system"}, {"builtins", "eval"}, {"builtins", "exec"},
           {"subprocess", "Popen"}, {"torch", "load"}, {"torch._utils", "_rebuild_device_tensor_from_numpy"},
           {"collections", "defaultdict"}, {"torch", "LongStorage"}}) {
    // GLOBAL then REDUCE: a real unpickler would call module.name("touch /tmp/x").
    const std::string bytes = std::string("\x80\x02", 2) + global(module, name) + "(" + str("touch /tmp/x") + "tR.";
    const std::string message = error_of(bytes);
    EXPECT_THAT(message, HasSubstr("test.pkl: byte 2: "));
    EXPECT_THAT(message, HasSubstr("\"" + module + "." + name + "\"")) << message;
  }
  // STACK_GLOBAL (protocol 4) is checked the same way.
  const std::string stack_global = std::string("\x80\x04\x8c\x02os\x8c\x06system\x93", 15) + "(" + str("id") + "tR.";
  EXPECT_THAT(error_of(stack_global), HasSubstr("refusing global \"os.system\""));
}

TEST(TorchPickle, CallsOnlyWhitelistedCallables) {
  // A storage type is recognised, but calling it is refused.
  EXPECT_THAT(error_of(std::string("\x80\x02", 2) + global("torch", "FloatStorage") + ")R."),
              HasSubstr("torch.FloatStorage cannot be called"));
  // OrderedDict with arguments, _rebuild_tensor_v2 with the wrong arity, REDUCE on a str.
  EXPECT_THAT(error_of(std::string("\x80\x02", 2) + global("collections", "OrderedDict") + "(]tR."),
              HasSubstr("called with arguments"));
  EXPECT_THAT(error_of(std::string("\x80\x02", 2) + global("torch._utils", "_rebuild_tensor_v2") + ")R."),
              HasSubstr("takes 6 or 7 arguments, got 0"));
  EXPECT_THAT(error_of(std::string("\x80\x02", 2) + str("os.system") + ")R."), HasSubstr("REDUCE calls a str"));
  // Backward hooks must be empty: a hook would be code to run.
  const std::string hooked = global("torch._utils", "_rebuild_tensor_v2") + "((" + str("storage") +
                             global("torch", "FloatStorage") + str("0") + str("cpu") + integer(1) + "tQ" + integer(0) +
                             int_tuple({1}) + int_tuple({1}) + "\x89" + "}" + str("k") + str("v") + "stR";
  EXPECT_THAT(error_of(state_dict(str("w") + hooked)), HasSubstr("backward hooks must be empty"));
}

TEST(TorchPickle, RefusesUnknownOpcodesNamingTheByteAndOffset) {
  // INST, OBJ, NEWOBJ, EXT1, PERSID and a byte that is no opcode at all.
  EXPECT_THAT(error_of(std::string("\x80\x02(ios\nsystem\n.", 15)), HasSubstr("byte 3: unsupported pickle opcode 0x69 ('i') INST"));
  EXPECT_THAT(error_of(std::string("\x80\x02(o.", 5)), HasSubstr("byte 3: unsupported pickle opcode 0x6f ('o') OBJ"));
  EXPECT_THAT(error_of(std::string("\x80\x02)\x81.", 5)), HasSubstr("byte 3: unsupported pickle opcode 0x81 NEWOBJ"));
  EXPECT_THAT(error_of(std::string("\x80\x02\x82\x01.", 5)), HasSubstr("opcode 0x82 EXT1/2/4"));
  EXPECT_THAT(error_of(std::string("\x80\x02Pfoo\n.", 8)), HasSubstr("opcode 0x50 ('P') PERSID"));
  EXPECT_THAT(error_of(std::string("\x80\x02\xff", 3)), HasSubstr("byte 2: unsupported pickle opcode 0xff"));
  EXPECT_THAT(error_of(std::string("\x80\x09}.", 4)), HasSubstr("pickle protocol 9"));
}

TEST(TorchPickle, BoundsNestingMemoStringsAndStack) {
  // 100,000 MARKs.
  EXPECT_THAT(error_of(std::string("\x80\x02", 2) + std::string(100'000, '(')), HasSubstr("more than 256 nested MARKs"));
  // Tuples nested 10,000 deep, each built from the one before (constant stack).
  std::string deep = std::string("\x80\x02)", 3);
  for (int i = 0; i < 10'000; ++i) deep += "\x85";
  EXPECT_THAT(error_of(deep + "."), HasSubstr("containers nested deeper than 64"));
  // Lists nested through the memo: put, get, append, put again.
  std::string chain = std::string("\x80\x02]q\x00", 5);
  for (int i = 0; i < 1'000; ++i) chain += std::string("]h\x00" "aq\x00", 6);
  EXPECT_THAT(error_of(chain + "."), HasSubstr("containers nested deeper than 64"));
  // A memo index of 2^32 - 1 (LONG_BINPUT), and one that was never stored (LONG_BINGET).
  EXPECT_THAT(error_of(std::string("\x80\x02}r\xff\xff\xff\xff.", 9)), HasSubstr("memo index 4294967295 exceeds the limit"));
  EXPECT_THAT(error_of(std::string("\x80\x02j\x10\x00\x00\x00.", 8)), HasSubstr("memo index 16 was never stored"));
  // A string that claims 4 GB, and one longer than the limit.
  EXPECT_THAT(error_of(std::string("\x80\x02X\xff\xff\xff\xff", 7)), HasSubstr("a string of 4294967295 bytes exceeds"));
  EXPECT_THAT(error_of(std::string("\x80\x02X\x10\x00\x00\x00" "abc", 10)), HasSubstr("the pickle ends inside a string"));
  // The stack: 200,000 Nones; underflow; STOP with leftovers; no STOP at all.
  EXPECT_THAT(error_of(std::string("\x80\x02", 2) + std::string(200'000, 'N')), HasSubstr("the stack grows past 100000"));
  EXPECT_THAT(error_of(std::string("\x80\x02R", 3)), HasSubstr("byte 2: stack underflow"));
  EXPECT_THAT(error_of(std::string("\x80\x02(}u)R", 7)), HasSubstr("stack underflow"));
  EXPECT_THAT(error_of(std::string("\x80\x02}}.", 5)), HasSubstr("STOP with 2 values on the stack"));
  EXPECT_THAT(error_of(std::string("\x80\x02}", 3)), HasSubstr("ends without a STOP opcode"));
  EXPECT_THAT(error_of(""), HasSubstr("byte 0: the pickle ends without a STOP opcode"));
}

TEST(TorchPickle, ChecksTensorsAgainstTheirStorage) {
  // [3, 4] with strides [4, 1] needs 12 elements; the storage declares 11.
  EXPECT_THAT(error_of(state_dict(str("w") + tensor("0", 11, 0, {3, 4}, {4, 1}))),
              HasSubstr("tensor \"w\" (built at byte "));
  EXPECT_THAT(error_of(state_dict(str("w") + tensor("0", 11, 0, {3, 4}, {4, 1}))),
              HasSubstr("reaches element 11 but storage \"0\" holds 11 elements"));
  // An offset past the end; strides whose products overflow int64.
  EXPECT_THAT(error_of(state_dict(str("w") + tensor("0", 4, 4, {1}, {1}))), HasSubstr("reaches element 4"));
  EXPECT_THAT(error_of(state_dict(str("w") + tensor("0", 4, 0, {1 << 30, 1 << 30, 1 << 30}, {1, 1, 1}))),
              HasSubstr("is too large"));
  EXPECT_THAT(error_of(state_dict(str("w") + tensor("0", 4, 0, {2, 2}, {1 << 30, 1 << 30}))), HasSubstr("reaches element"));
  // Negative sizes, mismatched ranks, the same key with two types.
  EXPECT_THAT(error_of(state_dict(str("w") + tensor("0", 4, 0, {-1}, {1}))), HasSubstr("holds -1, out of range"));
  EXPECT_THAT(error_of(state_dict(str("w") + tensor("0", 4, 0, {2, 2}, {2}))), HasSubstr("2 sizes but 1 strides"));
  EXPECT_THAT(error_of(state_dict(str("a") + tensor("0", 4, 0, {4}, {1}) + str("b") +
                                  tensor("0", 4, 0, {4}, {1}, "HalfStorage"))),
              HasSubstr("storage \"0\" is declared as torch.HalfStorage"));
  // A key that could name a path in the archive.
  EXPECT_THAT(error_of(state_dict(str("w") + tensor("../0", 4, 0, {4}, {1}))), HasSubstr("storage key must be"));
  // Something other than {name: tensor}.
  EXPECT_THAT(error_of(std::string("\x80\x02]", 3) + "."), HasSubstr("is a list, not a state dict"));
  EXPECT_THAT(error_of(state_dict(str("w") + integer(3))), HasSubstr("entry \"w\" is a int, not a tensor"));
  EXPECT_THAT(error_of(state_dict(str("w") + tensor("0", 4, 0, {4}, {1}) + str("w") + tensor("0", 4, 0, {4}, {1}))),
              HasSubstr("\"w\" appears twice"));
}

// Random bytes and random corruptions of a valid pickle: errors only (a libFuzzer target will
// do this properly; this keeps the property in the ordinary test run).
TEST(TorchPickle, ArbitraryBytesNeverCrash) {
  const std::string valid = state_dict(str("a") + tensor("0", 12, 0, {3, 4}, {4, 1}) + str("b") +
                                       tensor("1", 2, 0, {2}, {1}, "HalfStorage"));
  ASSERT_TRUE(parse(valid).ok());
  std::mt19937 random(12);
  int accepted = 0;
  for (int trial = 0; trial < 20'000; ++trial) {
    std::string bytes = valid;
    if (trial % 4 == 0) {
      bytes.resize(random() % 64);
      for (char& c : bytes) c = static_cast<char>(random());
    } else {
      for (int flips = 1 + static_cast<int>(random() % 4); flips > 0; --flips) {
        bytes[random() % bytes.size()] = static_cast<char>(random());
      }
      if (trial % 3 == 0) bytes.resize(random() % bytes.size());
    }
    accepted += parse(bytes).ok();
  }
  EXPECT_LT(accepted, 20'000);
}

}  // namespace
}  // namespace la3
