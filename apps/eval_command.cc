// `engine eval`: MolT5/LA3 metrics of a predictions TSV (what `engine generate` writes).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>

#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "apps/arguments.h"
#include "apps/commands.h"
#include "engine/io/file_io.h"
#include "eval/molecule_metrics.h"
#include "eval/bleu.h"
#include "eval/meteor.h"
#include "eval/wordnet.h"
#include "eval/predictions.h"
#include "eval/rouge.h"
#include "eval/wordpiece.h"

namespace la3::cli {

namespace {

const std::vector<OptionSpec> kOptions = {
    {"predictions", true, "MolT5 evaluation TSV (description|SMILES, ground truth, output)"},
    {"direction", true, "caption2smiles or smiles2caption; default: from the TSV header"},
    {"bert-vocab", true, "smiles2caption: uncased BERT vocab.txt for BLEU (MolT5: SciBERT scivocab_uncased)"},
    {"wordnet", true, "smiles2caption: WordNet 3.0 dict directory for METEOR synonyms (default /usr/share/wordnet)"},
    {"out", true, "write the metrics as JSON here"},
    {"max-smiles-chars", true, "caption2smiles: SMILES longer than this are not parsed (output counted invalid; default 4096)"},
    {"row-budget", true, "caption2smiles: seconds of RDKit/InChI work per row; a row over it is counted invalid and "
                         "named (default 10; 0 = no budget, in-process threads)"},
    {"external-scores", true, "JSON with FCD / Text2Mol scores computed elsewhere, reported as given"},
    {"help", false, "show this message"},
};

bool write_report(const Arguments& args, const nlohmann::json& report) {
  if (!args.has("out")) return true;
  if (absl::Status s = write_file_atomically(args.get("out"), report.dump(2) + "\n"); !s.ok()) {
    std::fprintf(stderr, "engine eval: %s\n", std::string(s.message()).c_str());
    return false;
  }
  return true;
}

// SMILES -> caption: BLEU-2/4 over WordPieces (needs --bert-vocab), ROUGE-1/2/L.
int report_text_metrics(const Arguments& args, const PredictionFile& file) {
  if (!args.has("bert-vocab")) {
    std::fprintf(stderr, "engine eval: smiles2caption BLEU needs --bert-vocab (an uncased BERT vocab.txt; MolT5 uses "
                         "SciBERT's scivocab_uncased)\n");
    return 2;
  }
  absl::StatusOr<WordPieceTokenizer> tokenizer = WordPieceTokenizer::load(args.get("bert-vocab"));
  if (!tokenizer.ok()) {
    std::fprintf(stderr, "engine eval: %s\n", std::string(tokenizer.status().message()).c_str());
    return 1;
  }
  absl::StatusOr<std::unique_ptr<WordNet>> wordnet =
      WordNet::load_if_present(args.get("wordnet", kDefaultWordNetDirectory));
  if (!wordnet.ok()) {
    std::fprintf(stderr, "engine eval: %s\n", std::string(wordnet.status().message()).c_str());
    return 1;
  }
  if (!*wordnet) {
    std::fprintf(stderr, "engine eval: no WordNet at %s: METEOR synonym matching is OFF (install wordnet-base)\n",
                 args.get("wordnet", kDefaultWordNetDirectory).c_str());
  }
  std::vector<Tokens> references, outputs;
  RougeScores sum;
  for (size_t i = 0; i < file.references.size(); ++i) {
    // MolT5 truncates to 512 WordPieces.
    Tokens reference = tokenizer->tokenize(file.references[i]), output = tokenizer->tokenize(file.outputs[i]);
    if (reference.size() > 512) reference.resize(512);
    if (output.size() > 512) output.resize(512);
    references.push_back(std::move(reference));
    outputs.push_back(std::move(output));
    const RougeScores r = rouge(file.outputs[i], file.references[i]);
    sum.rouge1 += r.rouge1;
    sum.rouge2 += r.rouge2;
    sum.rougeL += r.rougeL;
  }
  // METEOR per row on the WordPiece tokens, as MolT5: meteor_score([reference], output).
  std::vector<double> meteor_rows(references.size());
#pragma omp parallel for schedule(dynamic, 8)
  for (int64_t i = 0; i < static_cast<int64_t>(references.size()); ++i) {
    meteor_rows[static_cast<size_t>(i)] =
        meteor(references[static_cast<size_t>(i)], outputs[static_cast<size_t>(i)], wordnet->get()).score;
  }
  double meteor_sum = 0.0;
  for (double score : meteor_rows) meteor_sum += score;
  const double n = std::max<double>(1.0, static_cast<double>(file.references.size()));
  const double bleu2 = corpus_bleu(references, outputs, {0.5, 0.5}), bleu4 = corpus_bleu(references, outputs);
  const nlohmann::json report = {{"direction", "smiles2caption"}, {"rows", file.references.size()},
                                 {"rows_skipped", file.rows_skipped},
                                 {"rows_invalid_utf8", file.rows_invalid_utf8}, {"problems", file.problems},
                                 {"bleu2", bleu2}, {"bleu4", bleu4}, {"rouge1", sum.rouge1 / n},
                                 {"rouge2", sum.rouge2 / n}, {"rougeL", sum.rougeL / n}, {"meteor", meteor_sum / n},
                                 {"meteor_wordnet_synonyms", *wordnet != nullptr},
                                 {"notes", {"Text2Mol is not computed (it needs an external model)"}}};
  std::printf("%-32s %s\n", "metric", "value");
  std::printf("%-32s %zu (+%lld skipped)\n", "rows", file.references.size(), static_cast<long long>(file.rows_skipped));
  for (const auto& [name, value] : {std::pair<const char*, double>{"BLEU-2", bleu2}, {"BLEU-4", bleu4},
                                    {"ROUGE-1", sum.rouge1 / n}, {"ROUGE-2", sum.rouge2 / n}, {"ROUGE-L", sum.rougeL / n},
                                    {"METEOR", meteor_sum / n}}) {
    std::printf("%-32s %.4f\n", name, value);
  }
  if (!*wordnet) std::printf("%-32s %s\n", "METEOR synonyms", "off (no WordNet)");
  std::fflush(stdout);
  for (const std::string& problem : file.problems) std::fprintf(stderr, "skipped: %s\n", problem.c_str());
  return write_report(args, report) ? 0 : 1;
}

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
  if (direction == "smiles2caption") return report_text_metrics(*parsed, *file);
  if (direction != "caption2smiles") {
    std::fprintf(stderr, "engine eval: --direction must be caption2smiles or smiles2caption, got '%s'\n", direction.c_str());
    return 2;
  }
  MoleculeMetricsOptions metric_options;
  if (parsed->has("max-smiles-chars") &&
      (!absl::SimpleAtoi(parsed->get("max-smiles-chars"), &metric_options.max_smiles_chars) ||
       metric_options.max_smiles_chars == 0)) {
    std::fprintf(stderr, "engine eval: --max-smiles-chars '%s': expected a positive integer\n",
                 parsed->get("max-smiles-chars").c_str());
    return 2;
  }
  if (parsed->has("row-budget") && (!absl::SimpleAtod(parsed->get("row-budget"), &metric_options.row_budget_seconds) ||
                                    !std::isfinite(metric_options.row_budget_seconds) ||
                                    metric_options.row_budget_seconds < 0.0)) {
    std::fprintf(stderr, "engine eval: --row-budget '%s': expected seconds >= 0\n", parsed->get("row-budget").c_str());
    return 2;
  }
  const MoleculeMetrics m = molecule_metrics(file->references, file->outputs, metric_options);
  // Rows RDKit did not score in full, by file line.
  std::vector<std::string> unscored;
  for (const UnscoredRow& row : m.unscored) {
    unscored.push_back(absl::StrCat(parsed->get("predictions"), ":", file->lines[static_cast<size_t>(row.row)], ": ",
                                    row.reason));
  }
  nlohmann::json report = {{"direction", direction},
                           {"rows", m.rows},
                           {"rows_skipped", file->rows_skipped},
                           {"rows_invalid_utf8", file->rows_invalid_utf8},
                           {"problems", file->problems},
                           {"bleu", m.bleu},
                           {"exact_match_canonical_smiles", m.exact_canonical},
                           {"exact_match_inchi", m.exact_inchi},
                           {"levenshtein", m.levenshtein},
                           {"validity", m.validity},
                           {"maccs_fts", m.maccs_fts},
                           {"rdk_fts", m.rdk_fts},
                           {"morgan_fts", m.morgan_fts},
                           {"fingerprint_pairs", m.fingerprint_pairs},
                           {"invalid_outputs", m.invalid_outputs},
                           {"invalid_references", m.invalid_references},
                           {"outputs_too_long", m.outputs_too_long},
                           {"references_too_long", m.references_too_long},
                           {"rows_over_budget", m.rows_over_budget},
                           {"rows_worker_died", m.rows_worker_died},
                           {"unscored", unscored},
                           {"max_smiles_chars", metric_options.max_smiles_chars},
                           {"row_budget_seconds", metric_options.row_budget_seconds},
                           {"notes", {"exact_match_inchi: InChI 1.03 (libinchi) via RDKit 0D structures",
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
      {"BLEU (characters)", m.bleu},        {"exact match (InChI)", m.exact_inchi},
      {"exact match (canonical SMILES)", m.exact_canonical},
      {"Levenshtein", m.levenshtein},       {"validity", m.validity},
      {"MACCS FTS", m.maccs_fts},           {"RDK FTS", m.rdk_fts},
      {"Morgan FTS", m.morgan_fts}};
  for (const auto& [name, value] : table) std::printf("%-32s %.4f\n", name, value);
  if (!m.unscored.empty()) {
    std::printf("%-32s %zu (too long %lld, over the %g s budget %lld, worker died %lld)\n", "rows not fully scored",
                m.unscored.size(), static_cast<long long>(m.outputs_too_long + m.references_too_long),
                metric_options.row_budget_seconds, static_cast<long long>(m.rows_over_budget),
                static_cast<long long>(m.rows_worker_died));
  }
  std::fflush(stdout);  // the table first, then the skipped rows, also when both go to one pipe
  for (const std::string& problem : file->problems) std::fprintf(stderr, "skipped: %s\n", problem.c_str());
  for (const std::string& row : unscored) std::fprintf(stderr, "not fully scored: %s\n", row.c_str());
  if (!m.note.empty()) std::fprintf(stderr, "engine eval: %s\n", m.note.c_str());
  return write_report(*parsed, report) ? 0 : 1;
}

}  // namespace la3::cli
