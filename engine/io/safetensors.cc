#include "engine/io/safetensors.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "engine/io/file_io.h"
#include "engine/io/half_float.h"
#include "engine/io/json_duplicate_keys.h"

namespace la3 {

namespace {

using nlohmann::json;

// The reference implementation refuses headers above 100 MB; so do we.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

struct StoredType {
  DType dtype;         // what the tensor becomes in memory
  size_t stored_size;  // bytes per element in the file
};

bool stored_type_of(const std::string& name, StoredType& out) {
  if (name == "F32") { out = {DType::kF32, 4}; return true; }
  if (name == "BF16") { out = {DType::kBF16, 2}; return true; }
  if (name == "I32") { out = {DType::kI32, 4}; return true; }
  if (name == "I64") { out = {DType::kI64, 8}; return true; }
  if (name == "F16") { out = {DType::kF32, 2}; return true; }  // widened to f32
  if (name == "F64") { out = {DType::kF32, 8}; return true; }  // narrowed to f32
  return false;
}

const char* safetensors_dtype_name(DType dtype) {
  switch (dtype) {
    case DType::kF32: return "F32";
    case DType::kBF16: return "BF16";
    case DType::kI32: return "I32";
    case DType::kI64: return "I64";
  }
  return "?";
}

struct Entry {
  std::string name;
  StoredType type;
  Shape shape;
  uint64_t begin = 0, end = 0;
};

absl::Status header_error(const std::string& source, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(source, ": invalid safetensors header: ", what));
}

}  // namespace

absl::StatusOr<SafetensorsContents> parse_safetensors(const std::string& bytes, const std::string& source) {
  if (bytes.size() < 8) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": not a safetensors file: ", bytes.size(), " bytes, shorter than the 8-byte header length"));
  }
  uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i) header_size = (header_size << 8) | static_cast<unsigned char>(bytes[static_cast<size_t>(i)]);
  if (header_size > kMaxHeaderBytes || header_size > bytes.size() - 8) {
    return header_error(source, absl::StrCat("header length ", header_size, " exceeds the file (", bytes.size(),
                                             " bytes) or the 100 MB limit"));
  }
  const std::string header_text = bytes.substr(8, header_size);
  DuplicateKeyGuard guard;
  json header = json::parse(header_text, std::ref(guard), /*allow_exceptions=*/false);
  if (header.is_discarded()) return header_error(source, "the header is not valid JSON");
  if (guard.found()) return header_error(source, guard.description());
  if (!header.is_object()) return header_error(source, "the header is not a JSON object");

  const uint64_t data_start = 8 + header_size;
  const uint64_t data_size = bytes.size() - data_start;
  SafetensorsContents contents;
  std::vector<Entry> entries;
  for (const auto& [name, value] : header.items()) {
    if (name == "__metadata__") {
      if (!value.is_object()) return header_error(source, "__metadata__ is not an object");
      for (const auto& [key, text] : value.items()) {
        if (!text.is_string()) return header_error(source, absl::StrCat("__metadata__.", key, " is not a string"));
        contents.metadata[key] = text.get<std::string>();
      }
      continue;
    }
    const std::string where = absl::StrCat("tensor \"", name, "\"");
    if (!value.is_object() || !value.contains("dtype") || !value.contains("shape") || !value.contains("data_offsets")) {
      return header_error(source, absl::StrCat(where, " needs dtype, shape and data_offsets"));
    }
    Entry entry;
    entry.name = name;
    if (!value["dtype"].is_string() || !stored_type_of(value["dtype"].get<std::string>(), entry.type)) {
      return header_error(source, absl::StrCat(where, " has unsupported dtype ", value["dtype"].dump(),
                                               " (supported: F32, BF16, F16, F64, I32, I64)"));
    }
    if (!value["shape"].is_array()) return header_error(source, absl::StrCat(where, ": shape is not an array"));
    uint64_t count = 1;
    for (const json& extent : value["shape"]) {
      if (!extent.is_number_unsigned()) {
        return header_error(source, absl::StrCat(where, ": shape ", value["shape"].dump(),
                                                 " has an entry that is not a non-negative integer"));
      }
      const uint64_t e = extent.get<uint64_t>();
      if (e > (1ull << 40) || (e != 0 && count > (1ull << 40) / e)) {
        return header_error(source, absl::StrCat(where, ": shape ", value["shape"].dump(), " is too large"));
      }
      count *= e;
      entry.shape.push_back(static_cast<int64_t>(e));
    }
    const json& offsets = value["data_offsets"];
    if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
        !offsets[1].is_number_unsigned()) {
      return header_error(source, absl::StrCat(where, ": data_offsets must be [begin, end]"));
    }
    entry.begin = offsets[0].get<uint64_t>();
    entry.end = offsets[1].get<uint64_t>();
    if (entry.end < entry.begin || entry.end > data_size) {
      return header_error(source, absl::StrCat(where, ": data_offsets [", entry.begin, ", ", entry.end,
                                               "] fall outside the data region of ", data_size, " bytes"));
    }
    if (entry.end - entry.begin != count * entry.type.stored_size) {
      return header_error(source, absl::StrCat(where, ": shape ", value["shape"].dump(), " of ",
                                               value["dtype"].get<std::string>(), " needs ",
                                               count * entry.type.stored_size, " bytes but data_offsets cover ",
                                               entry.end - entry.begin));
    }
    entries.push_back(std::move(entry));
  }

  // Ranges must tile the data region exactly: no overlap, no hole.
  std::vector<const Entry*> by_offset;
  for (const Entry& e : entries) by_offset.push_back(&e);
  std::sort(by_offset.begin(), by_offset.end(), [](const Entry* a, const Entry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t cursor = 0;
  for (const Entry* e : by_offset) {
    if (e->begin < cursor) {
      return header_error(source, absl::StrCat("tensor \"", e->name, "\" [", e->begin, ", ", e->end,
                                               ") overlaps another tensor's bytes"));
    }
    if (e->begin > cursor) {
      return header_error(source, absl::StrCat("bytes [", cursor, ", ", e->begin,
                                               ") of the data region belong to no tensor (before \"", e->name, "\")"));
    }
    cursor = e->end;
  }
  if (cursor != data_size) {
    return header_error(source, absl::StrCat("bytes [", cursor, ", ", data_size,
                                             ") at the end of the data region belong to no tensor"));
  }

  for (const Entry& e : entries) {
    Tensor tensor = Tensor::empty(e.shape, e.type.dtype);
    const char* data = bytes.data() + data_start + e.begin;
    const int64_t count = tensor.numel();
    if (e.type.stored_size == dtype_size(e.type.dtype)) {
      std::memcpy(tensor.raw_data(), data, static_cast<size_t>(e.end - e.begin));  // little-endian host
    } else if (e.type.stored_size == 2) {
      float* out = tensor.data<float>();
      for (int64_t i = 0; i < count; ++i) {
        uint16_t h;
        std::memcpy(&h, data + 2 * i, 2);
        out[i] = half_to_float(h);
      }
    } else {
      float* out = tensor.data<float>();
      for (int64_t i = 0; i < count; ++i) {
        double d;
        std::memcpy(&d, data + 8 * i, 8);
        out[i] = static_cast<float>(d);
      }
    }
    contents.tensors.emplace(e.name, std::move(tensor));
  }
  return contents;
}

absl::StatusOr<SafetensorsContents> read_safetensors(const std::string& path) {
  absl::StatusOr<std::string> bytes = read_file(path);
  if (!bytes.ok()) return bytes.status();
  return parse_safetensors(*bytes, path);
}

absl::StatusOr<std::string> serialize_safetensors(const std::map<std::string, Tensor>& tensors,
                                                  const std::map<std::string, std::string>& metadata) {
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  std::vector<Tensor> dense;
  for (const auto& [name, tensor] : tensors) {
    if (name == "__metadata__") return absl::InvalidArgumentError("a tensor cannot be named __metadata__");
    if (!tensor.defined()) return absl::InvalidArgumentError(absl::StrCat("tensor \"", name, "\" is undefined"));
    // Device tensors are copied to the host (checkpoints of a model training on a GPU).
    const Tensor host = tensor.host_accessible() ? tensor.contiguous() : tensor.to_device(Device::cpu());
    const uint64_t bytes = host.nbytes();
    header[name] = {{"dtype", safetensors_dtype_name(host.dtype())},
                    {"shape", host.shape()},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    dense.push_back(host);
  }
  std::string header_text = header.dump();
  header_text.append((8 - header_text.size() % 8) % 8, ' ');
  std::string out;
  out.reserve(8 + header_text.size() + offset);
  const uint64_t header_size = header_text.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((header_size >> (8 * i)) & 0xffu));
  out += header_text;
  for (const Tensor& t : dense) out.append(static_cast<const char*>(t.raw_data()), t.nbytes());
  return out;
}

absl::Status write_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                               const std::map<std::string, std::string>& metadata) {
  absl::StatusOr<std::string> bytes = serialize_safetensors(tensors, metadata);
  if (!bytes.ok()) return bytes.status();
  return write_file_atomically(path, *bytes);
}

}  // namespace la3
