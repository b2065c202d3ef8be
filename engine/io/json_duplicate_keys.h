// nlohmann::json keeps the last of two equal keys without a word; for files where a repeated
// key means a broken or forged file (safetensors headers, sharded checkpoint indexes) this
// parser callback notices it: json::parse(text, std::ref(guard), false), then guard.found().
#pragma once

#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"

namespace la3 {

class DuplicateKeyGuard {
 public:
  bool operator()(int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    switch (event) {
      case nlohmann::json::parse_event_t::object_start:
        keys_.emplace_back();
        break;
      case nlohmann::json::parse_event_t::object_end:
        if (!keys_.empty()) keys_.pop_back();
        break;
      case nlohmann::json::parse_event_t::key: {
        const std::string key = parsed.get<std::string>();
        if (!keys_.empty() && !keys_.back().insert(key).second && !found_) {
          found_ = true;
          duplicate_ = absl::StrCat("duplicate key \"", key, "\" at JSON depth ", depth);
        }
        break;
      }
      default:
        break;
    }
    return true;
  }
  bool found() const { return found_; }
  const std::string& description() const { return duplicate_; }

 private:
  std::vector<std::set<std::string>> keys_;
  bool found_ = false;
  std::string duplicate_;
};

}  // namespace la3
