#include "engine/io/torch_archive.h"

#include <zip.h>

#include <cctype>
#include <cstring>
#include <fstream>
#include <memory>
#include <string_view>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "engine/io/half_float.h"
#include "engine/io/torch_pickle.h"

namespace la3 {

namespace {

// data.pkl of a state dict is ~100 bytes per tensor; anything near this is not one.
constexpr uint64_t kMaxPickleBytes = uint64_t{64} << 20;
constexpr uint64_t kMaxSmallRecordBytes = 64;  // version, byteorder
// deflate cannot expand more than ~1032:1; a record claiming more is a zip bomb.
constexpr uint64_t kMaxDeflateRatio = 1032;

struct ZipDiscard {
  void operator()(zip_t* archive) const { zip_discard(archive); }
};
struct ZipFileClose {
  void operator()(zip_file_t* file) const { zip_fclose(file); }
};

absl::Status archive_error(const std::string& path, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", what));
}

// The first bytes tell a zip from the legacy format (a pickle stream: PROTO 2 then a magic
// number) and from anything else, before libzip's more generic "Not a zip archive".
absl::Status check_signature(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open: ", std::strerror(errno)));
  char head[4] = {0, 0, 0, 0};
  in.read(head, sizeof head);
  const std::streamsize got = in.gcount();
  if (got == 4 && std::memcmp(head, "PK\x03\x04", 4) == 0) return absl::OkStatus();
  if (got >= 2 && static_cast<uint8_t>(head[0]) == 0x80 && static_cast<uint8_t>(head[1]) <= 5) {
    return archive_error(path, "this is the legacy torch.save format (torch < 1.6), which is not read; load it with "
                               "torch >= 1.6 and save it again (torch.save or save_pretrained) to get the zip format");
  }
  return archive_error(path, absl::StrCat("not a torch.save zip archive (", got < 4 ? "shorter than 4 bytes" : "no zip signature",
                                          "); expected the format torch.save writes since torch 1.6"));
}

class Archive {
 public:
  static absl::StatusOr<Archive> open(const std::string& path) {
    if (absl::Status s = check_signature(path); !s.ok()) return s;
    int code = 0;
    zip_t* handle = zip_open(path.c_str(), ZIP_RDONLY | ZIP_CHECKCONS, &code);
    if (handle == nullptr) {
      zip_error_t error;
      zip_error_init_with_code(&error, code);
      const std::string message = zip_error_strerror(&error);
      zip_error_fini(&error);
      return archive_error(path, absl::StrCat("not a readable zip archive (truncated or corrupt?): ", message));
    }
    return Archive(path, handle);
  }

  // The top-level folder that holds data.pkl (torch names it after the file or "archive").
  absl::StatusOr<std::string> find_prefix() {
    const zip_int64_t count = zip_get_num_entries(zip_.get(), 0);
    std::string prefix;
    int found = 0;
    for (zip_int64_t i = 0; i < count; ++i) {
      const char* name = zip_get_name(zip_.get(), static_cast<zip_uint64_t>(i), ZIP_FL_ENC_RAW);
      if (name == nullptr) continue;
      const std::string_view entry(name);
      const size_t slash = entry.find('/');
      if (slash != std::string_view::npos && slash > 0 && entry.substr(slash) == "/data.pkl") {
        prefix = std::string(entry.substr(0, slash));
        ++found;
      }
    }
    if (found == 0) return archive_error(path_, "the zip archive has no <name>/data.pkl record: not written by torch.save");
    if (found > 1) return archive_error(path_, "the zip archive has more than one <name>/data.pkl record");
    return prefix;
  }

  bool has(const std::string& name) { return zip_name_locate(zip_.get(), name.c_str(), 0) >= 0; }

  // The uncompressed size of a record, with the zip-bomb check.
  absl::StatusOr<uint64_t> size_of(const std::string& name) {
    zip_stat_t stat;
    zip_stat_init(&stat);
    if (zip_stat(zip_.get(), name.c_str(), 0, &stat) != 0) {
      return absl::NotFoundError(absl::StrCat(path_, ": the archive has no record ", name));
    }
    if ((stat.valid & ZIP_STAT_SIZE) == 0 || (stat.valid & ZIP_STAT_COMP_SIZE) == 0) {
      return archive_error(path_, absl::StrCat("record ", name, " has no size"));
    }
    if (stat.size > stat.comp_size && stat.size / kMaxDeflateRatio > stat.comp_size) {
      return archive_error(path_, absl::StrCat("record ", name, " claims ", stat.size, " bytes from ", stat.comp_size,
                                               " compressed ones"));
    }
    return stat.size;
  }

  // Reads exactly `size` bytes (the record's size, from size_of) into `out`.
  absl::Status read(const std::string& name, uint64_t size, char* out) {
    std::unique_ptr<zip_file_t, ZipFileClose> file(zip_fopen(zip_.get(), name.c_str(), 0));
    if (!file) return archive_error(path_, absl::StrCat("cannot open record ", name, ": ", zip_strerror(zip_.get())));
    uint64_t done = 0;
    while (done < size) {
      const zip_int64_t got = zip_fread(file.get(), out + done, size - done);
      if (got < 0) return archive_error(path_, absl::StrCat("cannot read record ", name, ": ", zip_file_strerror(file.get())));
      if (got == 0) break;
      done += static_cast<uint64_t>(got);
    }
    if (done != size) {
      return archive_error(path_, absl::StrCat("record ", name, " ends after ", done, " of its ", size, " bytes"));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::string> read_small(const std::string& name, uint64_t limit) {
    absl::StatusOr<uint64_t> size = size_of(name);
    if (!size.ok()) return size.status();
    if (*size > limit) return archive_error(path_, absl::StrCat("record ", name, " is ", *size, " bytes, more than ", limit));
    std::string bytes(static_cast<size_t>(*size), '\0');
    if (absl::Status s = read(name, *size, bytes.data()); !s.ok()) return s;
    return bytes;
  }

  const std::string& path() const { return path_; }

 private:
  Archive(std::string path, zip_t* handle) : path_(std::move(path)), zip_(handle) {}
  std::string path_;
  std::unique_ptr<zip_t, ZipDiscard> zip_;
};

// One tensor out of its storage's bytes: dtype conversion and a strided gather.
Tensor materialise(const TorchTensorRecord& record, const char* storage) {
  const size_t element = torch_storage_element_size(record.storage_type);
  const DType dtype = record.storage_type == TorchStorageType::kBFloat16 ? DType::kBF16 : DType::kF32;
  Tensor tensor = Tensor::empty(record.sizes, dtype);
  const int64_t numel = tensor.numel();
  if (numel == 0) return tensor;
  char* out = static_cast<char*>(tensor.raw_data());
  auto copy_element = [&](int64_t destination, int64_t source) {
    const char* from = storage + static_cast<size_t>(source) * element;
    if (record.storage_type == TorchStorageType::kHalf) {
      uint16_t half;
      std::memcpy(&half, from, sizeof half);
      const float value = half_to_float(half);
      std::memcpy(out + static_cast<size_t>(destination) * 4, &value, sizeof value);
    } else {
      std::memcpy(out + static_cast<size_t>(destination) * element, from, element);  // little-endian host
    }
  };
  bool contiguous = true;
  int64_t expected_stride = 1;
  for (size_t d = record.sizes.size(); d-- > 0;) {
    if (record.sizes[d] != 1 && record.strides[d] != expected_stride) contiguous = false;
    expected_stride *= record.sizes[d];
  }
  if (contiguous && record.storage_type != TorchStorageType::kHalf) {
    std::memcpy(out, storage + static_cast<size_t>(record.storage_offset) * element, static_cast<size_t>(numel) * element);
    return tensor;
  }
  // Row-major walk over the view; `source` follows the strides (the pickle reader checked
  // that the largest index it reaches lies inside the storage).
  std::vector<int64_t> index(record.sizes.size(), 0);
  int64_t source = record.storage_offset;
  for (int64_t i = 0; i < numel; ++i) {
    copy_element(i, source);
    for (size_t d = record.sizes.size(); d-- > 0;) {
      if (++index[d] < record.sizes[d]) {
        source += record.strides[d];
        break;
      }
      source -= (record.sizes[d] - 1) * record.strides[d];
      index[d] = 0;
    }
  }
  return tensor;
}

}  // namespace

absl::StatusOr<std::map<std::string, Tensor>> read_torch_archive(const std::string& path) {
  absl::StatusOr<Archive> archive = Archive::open(path);
  if (!archive.ok()) return archive.status();
  absl::StatusOr<std::string> prefix = archive->find_prefix();
  if (!prefix.ok()) return prefix.status();

  // Format version and byte order: refuse what we would misread.
  const std::string version_name =
      archive->has(*prefix + "/version") ? *prefix + "/version" : *prefix + "/.data/version";
  absl::StatusOr<std::string> version_text = archive->read_small(version_name, kMaxSmallRecordBytes);
  if (!version_text.ok()) {
    return archive_error(path, absl::StrCat("no readable ", *prefix, "/version record (not written by torch.save?): ",
                                            version_text.status().message()));
  }
  int version = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(*version_text), &version) || version < 1) {
    return archive_error(path, absl::StrCat("record ", version_name, " holds \"", absl::CEscape(*version_text),
                                            "\", not a format version"));
  }
  if (archive->has(*prefix + "/byteorder")) {
    absl::StatusOr<std::string> order = archive->read_small(*prefix + "/byteorder", kMaxSmallRecordBytes);
    if (!order.ok()) return order.status();
    if (*order != "little") {
      return archive_error(path, absl::StrCat("byte order \"", absl::CEscape(*order),
                                              "\": only little-endian archives are read"));
    }
  }

  const std::string pickle_name = *prefix + "/data.pkl";
  absl::StatusOr<std::string> pickle = archive->read_small(pickle_name, kMaxPickleBytes);
  if (!pickle.ok()) return pickle.status();
  absl::StatusOr<std::vector<TorchTensorRecord>> records =
      parse_torch_pickle(*pickle, absl::StrCat(path, " (", pickle_name, ")"));
  if (!records.ok()) return records.status();

  // One storage at a time: read its record once, cut every tensor that views it, free it.
  std::map<std::string, std::vector<const TorchTensorRecord*>> by_storage;
  for (const TorchTensorRecord& record : *records) by_storage[record.storage_key].push_back(&record);
  std::map<std::string, Tensor> tensors;
  for (const auto& [key, views] : by_storage) {
    const TorchTensorRecord& first = *views.front();
    const std::string record_name = absl::StrCat(*prefix, "/data/", key);
    absl::StatusOr<uint64_t> size = archive->size_of(record_name);
    if (!size.ok()) {
      return absl::NotFoundError(absl::StrCat(path, ": tensor \"", first.name, "\" needs storage record ", record_name,
                                              ", which the archive lacks"));
    }
    const uint64_t expected = static_cast<uint64_t>(first.storage_numel) * torch_storage_element_size(first.storage_type);
    if (*size != expected) {
      return archive_error(path, absl::StrCat("storage record ", record_name, " holds ", *size, " bytes but tensor \"",
                                              first.name, "\" declares it as ", first.storage_numel, " elements of ",
                                              torch_storage_type_name(first.storage_type), " (", expected, " bytes)"));
    }
    std::vector<char> bytes(static_cast<size_t>(expected));
    if (absl::Status s = archive->read(record_name, expected, bytes.data()); !s.ok()) return s;
    for (const TorchTensorRecord* view : views) tensors.emplace(view->name, materialise(*view, bytes.data()));
  }
  return tensors;
}

}  // namespace la3
