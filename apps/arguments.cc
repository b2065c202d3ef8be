#include "apps/arguments.h"

#include "absl/strings/str_cat.h"

namespace la3::cli {

absl::StatusOr<Arguments> Arguments::parse(const std::vector<std::string>& args, const std::vector<OptionSpec>& specs) {
  Arguments parsed;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg.rfind("--", 0) != 0) {
      parsed.positional_.push_back(arg);
      continue;
    }
    std::string name = arg.substr(2), value;
    const size_t equals = name.find('=');
    const bool inline_value = equals != std::string::npos;
    if (inline_value) {
      value = name.substr(equals + 1);
      name = name.substr(0, equals);
    }
    const OptionSpec* spec = nullptr;
    for (const OptionSpec& candidate : specs) {
      if (candidate.name == name) spec = &candidate;
    }
    if (spec == nullptr) return absl::InvalidArgumentError(absl::StrCat("unknown option --", name));
    if (spec->takes_value && !inline_value) {
      if (i + 1 >= args.size()) return absl::InvalidArgumentError(absl::StrCat("option --", name, " needs a value"));
      value = args[++i];
    } else if (!spec->takes_value && inline_value) {
      return absl::InvalidArgumentError(absl::StrCat("option --", name, " takes no value"));
    }
    parsed.values_[name] = value;
  }
  return parsed;
}

std::string Arguments::get(const std::string& name, const std::string& fallback) const {
  auto found = values_.find(name);
  return found == values_.end() ? fallback : found->second;
}

std::string describe_options(const std::vector<OptionSpec>& specs) {
  std::string out;
  for (const OptionSpec& spec : specs) {
    std::string left = absl::StrCat("  --", spec.name, spec.takes_value ? " VALUE" : "");
    if (left.size() < 26) left.append(26 - left.size(), ' ');
    absl::StrAppend(&out, left, " ", spec.help, "\n");
  }
  return out;
}

}  // namespace la3::cli
