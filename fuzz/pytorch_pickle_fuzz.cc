// Fuzz target: the strict pickle reader of pytorch_model.bin (engine/io/torch_pickle.h) on
// arbitrary data.pkl bytes. Whatever it accepts must be self-consistent: every tensor view
// lies inside its storage (what the archive reader relies on before it copies bytes).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "engine/io/torch_pickle.h"
#include "fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const absl::StatusOr<std::vector<la3::TorchTensorRecord>> records = la3::parse_torch_pickle(bytes, "fuzz/data.pkl");
  if (!records.ok()) return 0;
  for (const la3::TorchTensorRecord& record : *records) {
    LA3_FUZZ_CHECK(record.sizes.size() == record.strides.size());
    LA3_FUZZ_CHECK(record.storage_offset >= 0 && record.storage_numel >= 0);
    // The furthest element the view reaches (empty views reach nothing).
    bool empty = false;
    __int128 last = record.storage_offset;
    for (size_t d = 0; d < record.sizes.size(); ++d) {
      LA3_FUZZ_CHECK(record.sizes[d] >= 0 && record.strides[d] >= 0);
      if (record.sizes[d] == 0) empty = true;
      last += static_cast<__int128>(record.sizes[d] > 0 ? record.sizes[d] - 1 : 0) * record.strides[d];
    }
    LA3_FUZZ_CHECK(empty || last < record.storage_numel);
  }
  return 0;
}
