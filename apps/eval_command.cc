// `engine eval`: MolT5/LA3 metrics of a predictions TSV (what `engine generate` writes).
#include <cstdio>
#include <fstream>

#include <nlohmann/json.hpp>

#include "apps/arguments.h"
#include "apps/commands.h"
#include "engine/io/file_io.h"
#include "eval/molecule_metrics.h"
#include "eval/predictions.h"

namespace la3::cli {

namespace {

const std::vector<OptionSpec> kOptions = {
    {"predictions", true, "MolT5 evaluation TSV (description|SMILES, ground truth, output)"},
    {"direction", true, "caption2smiles (molecule metrics); default: from the TSV header"},
    {"out", true, "write the metrics as JSON here"},
    {"external-scores", true, "JSON with FCD / Text2Mol scores computed elsewhere, reported as given"},
    {"help", false, "show this message"},
};

}  // namespace

int run_eval(const std::vector<std::string>& args) {
  absl::StatusOr<Arguments> parsed = Arguments::parse(args, kOptions);
  const char* usage = "usage: engine eval --predictions FILE.tsv [--out metrics.json] [--external-scores FILE.json]\n\n";
  if (!parsed.ok() || parsed->has("help") || !parsed->has("predictions")) {
    if (!parsed.ok()) std::fprintf(stderr, "engine eval: %s\n\n", std::string(parsed.status().message()).c_str());
    if (parsed.ok() && !parsed->has("help")) std::fprintf(stderr, "engine eval: --predictions is required\n\n");
    const bool help = parsed.ok() && parsed->has("help");
    std::fprintf(help ? stdout : stderr, "%s%s", usage, describe_options(kOptions).c_str());
    return help ? 0 : 2;
  }
  absl::StatusOr<PredictionFile> file = read_predictions(parsed->get("predictions"));
  if (!file.ok()) {
    std::fprintf(stderr, "engine eval: %s\n", std::string(file.status().message()).c_str());
    return 1;
  }
  const std::string direction = parsed->get("direction", file->input_column == "description" ? "caption2smiles" : "smiles2caption");
  if (direction != "caption2smiles") {
    // The text metrics (WordPiece BLEU, METEOR, ROUGE) are the remaining part of issue #5.
    std::fprintf(stderr, "engine eval: only caption2smiles (molecule) metrics are available in this version; "
                         "smiles2caption text metrics are still to come\n");
    return 2;
  }
  const MoleculeMetrics m = molecule_metrics(file->references, file->outputs);
  nlohmann::json report = {{"direction", direction},
                           {"rows", m.rows},
                           {"rows_skipped", file->rows_skipped},
                           {"problems", file->problems},
                           {"bleu", m.bleu},
                           {"exact_match_canonical_smiles", m.exact_canonical},
                           {"exact_match_inchi", nullptr},
                           {"levenshtein", m.levenshtein},
                           {"validity", m.validity},
                           {"maccs_fts", m.maccs_fts},
                           {"rdk_fts", m.rdk_fts},
                           {"morgan_fts", m.morgan_fts},
                           {"fingerprint_pairs", m.fingerprint_pairs},
                           {"invalid_outputs", m.invalid_outputs},
                           {"invalid_references", m.invalid_references},
                           {"notes", {"exact_match_inchi is not computed: Debian's RDKit has no InChI module",
                                      "FCD and Text2Mol are not computed (they need external model weights)"}}};
  if (parsed->has("external-scores")) {
    std::ifstream stream(parsed->get("external-scores"));
    const nlohmann::json external = nlohmann::json::parse(stream, nullptr, false);
    if (!stream || external.is_discarded() || !external.is_object()) {
      std::fprintf(stderr, "engine eval: %s: not a JSON object\n", parsed->get("external-scores").c_str());
      return 1;
    }
    report["external_scores_not_computed_here"] = external;
  }
  std::printf("%-32s %s\n", "metric", "value");
  std::printf("%-32s %lld (+%lld skipped)\n", "rows", static_cast<long long>(m.rows), static_cast<long long>(file->rows_skipped));
  const std::pair<const char*, double> table[] = {
      {"BLEU (characters)", m.bleu},        {"exact match (canonical SMILES)", m.exact_canonical},
      {"Levenshtein", m.levenshtein},       {"validity", m.validity},
      {"MACCS FTS", m.maccs_fts},           {"RDK FTS", m.rdk_fts},
      {"Morgan FTS", m.morgan_fts}};
  for (const auto& [name, value] : table) std::printf("%-32s %.4f\n", name, value);
  std::printf("%-32s %s\n", "exact match (InChI)", "not computed (no InChI in Debian's RDKit)");
  std::fflush(stdout);  // the table first, then the skipped rows, also when both go to one pipe
  for (const std::string& problem : file->problems) std::fprintf(stderr, "skipped: %s\n", problem.c_str());
  if (parsed->has("out")) {
    if (absl::Status s = write_file_atomically(parsed->get("out"), report.dump(2) + "\n"); !s.ok()) {
      std::fprintf(stderr, "engine eval: %s\n", std::string(s.message()).c_str());
      return 1;
    }
  }
  return 0;
}

}  // namespace la3::cli
