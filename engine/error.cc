#include "engine/error.h"

#include <new>

namespace la3 {

absl::Status StatusFromException(const std::exception& error) {
  if (const auto* engine_error = dynamic_cast<const EngineError*>(&error)) {
    switch (engine_error->kind()) {
      case ErrorKind::kInvalidArgument:
        return absl::InvalidArgumentError(error.what());
      case ErrorKind::kOutOfRange:
        return absl::OutOfRangeError(error.what());
      case ErrorKind::kUnimplemented:
        return absl::UnimplementedError(error.what());
      case ErrorKind::kResourceExhausted:
        return absl::ResourceExhaustedError(error.what());
      case ErrorKind::kInternal:
        break;
    }
    return absl::InternalError(error.what());
  }
  if (dynamic_cast<const std::bad_alloc*>(&error) != nullptr) {
    return absl::ResourceExhaustedError(absl::StrCat("allocation failed: ", error.what()));
  }
  return absl::InternalError(absl::StrCat("unexpected exception: ", error.what()));
}

}  // namespace la3
