// Command-line options of a subcommand: "--name value", "--name=value" and boolean
// "--flag". Unknown options and missing values are errors that name the option.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace la3::cli {

struct OptionSpec {
  std::string name;  // without the leading dashes
  bool takes_value = true;
  std::string help;
};

class Arguments {
 public:
  static absl::StatusOr<Arguments> parse(const std::vector<std::string>& args, const std::vector<OptionSpec>& specs);

  bool has(const std::string& name) const { return values_.count(name) > 0; }
  std::string get(const std::string& name, const std::string& fallback = "") const;
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  std::map<std::string, std::string> values_;
  std::vector<std::string> positional_;
};

// "  --config FILE   help" lines for a usage message.
std::string describe_options(const std::vector<OptionSpec>& specs);

}  // namespace la3::cli
