#include "llm_client/augment_config.h"

#include <yaml-cpp/yaml.h>

#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/io/file_io.h"

namespace la3::llm {

namespace {

// One YAML mapping; remembers the keys read so the others can be reported as unknown.
class Section {
 public:
  Section(const YAML::Node& node, std::string path, const std::string& source)
      : node_(node), path_(std::move(path)), source_(source) {}

  absl::Status check_is_map() const {
    if (node_ && !node_.IsNull() && !node_.IsMap()) {
      return absl::InvalidArgumentError(absl::StrCat(source_, ":", node_.Mark().line + 1, ": ",
                                                     path_.empty() ? "the document" : path_, " must be a mapping"));
    }
    return absl::OkStatus();
  }

  template <typename T>
  absl::Status read(const std::string& key, T& out) {
    known_.insert(key);
    if (!node_ || !node_.IsMap() || !node_[key]) return absl::OkStatus();
    const YAML::Node value = node_[key];
    try {
      if (!value.IsScalar()) throw YAML::Exception(YAML::Mark::null_mark(), "not a scalar");
      out = value.as<T>();
    } catch (const YAML::Exception&) {
      return invalid(value, key);
    }
    return absl::OkStatus();
  }

  absl::Status read_list(const std::string& key, std::vector<std::string>& out) {
    known_.insert(key);
    if (!node_ || !node_.IsMap() || !node_[key]) return absl::OkStatus();
    const YAML::Node value = node_[key];
    try {
      if (!value.IsSequence()) throw YAML::Exception(YAML::Mark::null_mark(), "not a list");
      out = value.as<std::vector<std::string>>();
    } catch (const YAML::Exception&) {
      return invalid(value, key);
    }
    return absl::OkStatus();
  }

  absl::Status check_unknown_keys() const {
    if (!node_ || !node_.IsMap()) return absl::OkStatus();
    for (const auto& entry : node_) {
      // A sequence or mapping as a key ("[a, b]: 1", "? {a: 1}") has no name: as<std::string>()
      // would throw out of the parser (found by the fuzz targets in fuzz/).
      if (!entry.first.IsScalar()) {
        return absl::InvalidArgumentError(absl::StrCat(source_, ":", entry.first.Mark().line + 1, ": a key of ",
                                                       path_.empty() ? "the document" : path_,
                                                       " must be a plain name, not a list or mapping"));
      }
      const std::string key = entry.first.as<std::string>();
      if (!known_.count(key)) {
        return absl::InvalidArgumentError(absl::StrCat(source_, ":", entry.first.Mark().line + 1, ": unknown key '",
                                                       key_path(key), "' (known keys: ", absl::StrJoin(known_, ", "), ")"));
      }
    }
    return absl::OkStatus();
  }

  YAML::Node child(const std::string& key) {
    known_.insert(key);
    return node_ && node_.IsMap() ? node_[key] : YAML::Node();
  }

 private:
  absl::Status invalid(const YAML::Node& value, const std::string& key) const {
    return absl::InvalidArgumentError(absl::StrCat(source_, ":", value.Mark().line + 1, ": ", key_path(key),
                                                   " has an invalid value '", YAML::Dump(value), "'"));
  }
  std::string key_path(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }

  YAML::Node node_;
  std::string path_;
  const std::string& source_;
  std::set<std::string> known_;
};

std::string replace_extension(const std::string& path, const std::string& extension) {
  const std::string stem = absl::EndsWith(path, ".jsonl") ? path.substr(0, path.size() - 6) : path;
  return stem + extension;
}

}  // namespace

absl::Status AugmentConfig::finalize() {
  if (output_csv.empty()) output_csv = replace_extension(output_jsonl, ".csv");
  if (journal.empty()) journal = replace_extension(output_jsonl, ".journal.jsonl");
  auto check = [](bool ok, const std::string& what) {
    return ok ? absl::OkStatus() : absl::InvalidArgumentError(absl::StrCat("augment configuration: ", what));
  };
  for (absl::Status s : {
           check(k >= 1 && k <= 64, "data.k must be in 1..64"),
           check(n >= 1 && n <= 64, "sampling.n must be in 1..64"),
           check(client.max_in_flight >= 1 && client.max_in_flight <= 1024, "concurrency.max_in_flight must be in 1..1024"),
           check(client.max_attempts >= 1, "retry.max_attempts must be >= 1"),
           check(client.timeout_seconds > 0 && client.connect_timeout_seconds > 0, "timeouts must be > 0"),
           check(client.backoff_base_seconds >= 0 && client.backoff_max_seconds >= 0, "backoff times must be >= 0"),
           check(client.max_tokens >= 1, "sampling.max_tokens must be >= 1"),
           check(max_rejections >= 0, "filter.max_rejections must be >= 0"),
           check(limit >= 0, "data.limit must be >= 0"),
           check(filter.min_length_ratio <= filter.max_length_ratio, "filter.min_length_ratio > filter.max_length_ratio"),
           check(replay.empty() ? !client.model.empty() : true, "endpoint.model is required (or --model)"),
           check(replay.empty() ? !client.base_url.empty() : true, "endpoint.base_url is required (or --base-url)"),
           check(!output_jsonl.empty(), "output.jsonl is required"),
       }) {
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::StatusOr<AugmentConfig> parse_augment_config(const std::string& yaml_text, const std::string& source) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& error) {
    return absl::InvalidArgumentError(absl::StrCat(source, ":", error.mark.line + 1, ": YAML syntax error: ", error.msg));
  }
  AugmentConfig c;
  ClientOptions& o = c.client;
  FilterOptions& f = c.filter;
  Section top(root, "", source);
  if (absl::Status s = top.check_is_map(); !s.ok()) return s;
  Section endpoint(top.child("endpoint"), "endpoint", source), sampling(top.child("sampling"), "sampling", source),
      prompt(top.child("prompt"), "prompt", source), concurrency(top.child("concurrency"), "concurrency", source),
      retry(top.child("retry"), "retry", source), data(top.child("data"), "data", source),
      output(top.child("output"), "output", source), filter(top.child("filter"), "filter", source),
      pricing(top.child("pricing"), "pricing", source);
  std::string bad_rows = "fail";
  for (absl::Status s : {
           top.check_unknown_keys(), endpoint.check_is_map(), sampling.check_is_map(), prompt.check_is_map(),
           concurrency.check_is_map(), retry.check_is_map(), data.check_is_map(), output.check_is_map(),
           filter.check_is_map(), pricing.check_is_map(),
           endpoint.read("base_url", o.base_url), endpoint.read("model", o.model),
           endpoint.read("api_key_env", c.api_key_env), endpoint.read("timeout_seconds", o.timeout_seconds),
           endpoint.read("connect_timeout_seconds", o.connect_timeout_seconds),
           sampling.read("temperature", o.temperature), sampling.read("top_p", o.top_p),
           sampling.read("max_tokens", o.max_tokens), sampling.read("n", c.n),
           prompt.read("template", c.template_path), prompt.read("system", c.system_prompt),
           concurrency.read("max_in_flight", o.max_in_flight), concurrency.read("requests_per_minute", o.requests_per_minute),
           concurrency.read("tokens_per_minute", o.tokens_per_minute),
           retry.read("max_attempts", o.max_attempts), retry.read("backoff_base_seconds", o.backoff_base_seconds),
           retry.read("backoff_max_seconds", o.backoff_max_seconds),
           retry.read("max_retry_after_seconds", o.max_retry_after_seconds),
           data.read("input", c.input), data.read("bad_rows", bad_rows), data.read("allow_eval_split", c.allow_eval_split),
           data.read("limit", c.limit), data.read("k", c.k),
           output.read("jsonl", c.output_jsonl), output.read("csv", c.output_csv), output.read("journal", c.journal),
           output.read("journal_fsync_interval_ms", c.journal_fsync_interval_ms),
           filter.read("min_length_ratio", f.min_length_ratio), filter.read("max_length_ratio", f.max_length_ratio),
           filter.read("min_entity_recall", f.min_entity_recall),
           filter.read("max_rouge_l_to_original", f.max_rouge_l_to_original),
           filter.read("max_jaccard_to_original", f.max_jaccard_to_original),
           filter.read("max_rouge_l_to_sibling", f.max_rouge_l_to_sibling),
           filter.read("max_jaccard_to_sibling", f.max_jaccard_to_sibling),
           filter.read("max_rejections", c.max_rejections), filter.read_list("preamble_prefixes", f.preamble_prefixes),
           pricing.read("input_per_million_tokens", c.price_input_per_million),
           pricing.read("output_per_million_tokens", c.price_output_per_million),
       }) {
    if (!s.ok()) return s;
  }
  for (Section* s : {&endpoint, &sampling, &prompt, &concurrency, &retry, &data, &output, &filter, &pricing}) {
    if (absl::Status st = s->check_unknown_keys(); !st.ok()) return st;
  }
  if (bad_rows == "fail") {
    c.bad_rows = BadRowPolicy::kFail;
  } else if (bad_rows == "skip") {
    c.bad_rows = BadRowPolicy::kSkip;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(source, ": data.bad_rows must be fail or skip, not '", bad_rows, "'"));
  }
  return c;
}

absl::StatusOr<AugmentConfig> load_augment_config(const std::string& path) {
  absl::StatusOr<std::string> text = read_file(path);
  if (!text.ok()) return text.status();
  return parse_augment_config(*text, path);
}

}  // namespace la3::llm
