// The subcommands of `engine`. Each returns the process exit code and does its own printing.
#pragma once

#include <string>
#include <vector>

namespace la3::cli {

int run_train(const std::vector<std::string>& args);
int run_tokenizer(const std::vector<std::string>& args);
int run_generate(const std::vector<std::string>& args);
int run_eval(const std::vector<std::string>& args);
int run_augment(const std::vector<std::string>& args);
int run_score(const std::vector<std::string>& args);

}  // namespace la3::cli
