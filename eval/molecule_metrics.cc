#include "eval/molecule_metrics.h"

#include <DataStructs/BitOps.h>
#include <DataStructs/ExplicitBitVect.h>
#include <DataStructs/SparseIntVect.h>
#include <GraphMol/Fingerprints/Fingerprints.h>
#include <GraphMol/Fingerprints/MACCS.h>
#include <GraphMol/Fingerprints/MorganFingerprints.h>
#include <GraphMol/GraphMol.h>
#include <GraphMol/SmilesParse/SmilesParse.h>
#include <GraphMol/SmilesParse/SmilesWrite.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <thread>
#include <type_traits>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "absl/strings/str_cat.h"
#include "eval/budgeted_rows.h"
#include "eval/bleu.h"
#include "eval/inchi.h"
#include "eval/smiles.h"

namespace la3 {

int64_t levenshtein(const std::string& a, const std::string& b) {
  std::vector<int64_t> previous(b.size() + 1), current(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) previous[j] = static_cast<int64_t>(j);
  for (size_t i = 1; i <= a.size(); ++i) {
    current[0] = static_cast<int64_t>(i);
    for (size_t j = 1; j <= b.size(); ++j) {
      const int64_t substitution = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      current[j] = std::min({previous[j] + 1, current[j - 1] + 1, substitution});
    }
    std::swap(previous, current);
  }
  return previous[b.size()];
}

namespace {

int default_workers() {
#ifdef _OPENMP
  return std::max(1, omp_get_max_threads());  // honours OMP_NUM_THREADS
#else
  return std::max(1u, std::thread::hardware_concurrency());
#endif
}

// Trivially copyable: it travels from worker processes as raw bytes (budgeted_rows.h).
struct PairScores {
  bool output_valid = false, reference_valid = false, exact = false, exact_inchi = false;
  double maccs = 0.0, rdk = 0.0, morgan = 0.0;
};
static_assert(std::is_trivially_copyable_v<PairScores>);

std::unique_ptr<RDKit::ROMol> parse_quietly(const std::string& smiles) {
  quiet_rdkit_errors();
  if (smiles.empty()) return nullptr;
  try {
    return std::unique_ptr<RDKit::ROMol>(RDKit::SmilesToMol(smiles));
  } catch (const std::exception&) {
    return nullptr;
  }
}

PairScores score_pair(const std::string& reference, const std::string& output, size_t max_chars) {
  PairScores scores;
  // Over the cap: not parsed at all (RDKit's time grows faster than linearly with atoms).
  const std::unique_ptr<RDKit::ROMol> out = output.size() <= max_chars ? parse_quietly(output) : nullptr;
  const std::unique_ptr<RDKit::ROMol> ref = reference.size() <= max_chars ? parse_quietly(reference) : nullptr;
  scores.output_valid = out != nullptr;
  scores.reference_valid = ref != nullptr;
  if (!out || !ref) return scores;
  scores.exact = RDKit::MolToSmiles(*out) == RDKit::MolToSmiles(*ref);
  const std::optional<std::string> inchi_out = standard_inchi(output), inchi_ref = standard_inchi(reference);
  scores.exact_inchi = inchi_out && inchi_ref && *inchi_out == *inchi_ref;
  const std::unique_ptr<ExplicitBitVect> maccs_out(RDKit::MACCSFingerprints::getFingerprintAsBitVect(*out));
  const std::unique_ptr<ExplicitBitVect> maccs_ref(RDKit::MACCSFingerprints::getFingerprintAsBitVect(*ref));
  scores.maccs = TanimotoSimilarity(*maccs_ref, *maccs_out);
  const std::unique_ptr<ExplicitBitVect> rdk_out(RDKit::RDKFingerprintMol(*out));
  const std::unique_ptr<ExplicitBitVect> rdk_ref(RDKit::RDKFingerprintMol(*ref));
  scores.rdk = TanimotoSimilarity(*rdk_ref, *rdk_out);
  const std::unique_ptr<RDKit::SparseIntVect<std::uint32_t>> morgan_out(RDKit::MorganFingerprints::getFingerprint(*out, 2));
  const std::unique_ptr<RDKit::SparseIntVect<std::uint32_t>> morgan_ref(RDKit::MorganFingerprints::getFingerprint(*ref, 2));
  scores.morgan = RDKit::TanimotoSimilarity(*morgan_ref, *morgan_out);
  return scores;
}

}  // namespace

MoleculeMetrics molecule_metrics(const std::vector<std::string>& references, const std::vector<std::string>& outputs,
                                 const MoleculeMetricsOptions& options) {
  MoleculeMetrics m;
  const int64_t rows = static_cast<int64_t>(std::min(references.size(), outputs.size()));
  m.rows = rows;
  if (rows == 0) return m;
  const size_t cap = options.max_smiles_chars;
  std::vector<PairScores> scores(static_cast<size_t>(rows));
  std::vector<RowOutcome> outcomes(static_cast<size_t>(rows), RowOutcome::kDone);
  if (options.row_budget_seconds > 0.0) {
    quiet_rdkit_errors();  // once, before the workers fork
    const BudgetedRows budgeted = run_rows_with_budget(
        rows, sizeof(PairScores),
        [&](int64_t i, std::byte* record) {
          const PairScores s = score_pair(references[static_cast<size_t>(i)], outputs[static_cast<size_t>(i)], cap);
          std::memcpy(record, &s, sizeof s);
        },
        options.row_budget_seconds, options.workers > 0 ? options.workers : default_workers());
    for (int64_t i = 0; i < rows; ++i) {
      std::memcpy(&scores[static_cast<size_t>(i)], budgeted.records.data() + static_cast<size_t>(i) * sizeof(PairScores),
                  sizeof(PairScores));
    }
    outcomes = budgeted.outcomes;
    m.note = budgeted.note;
  } else {
#pragma omp parallel for schedule(dynamic, 16)
    for (int64_t i = 0; i < rows; ++i) {
      scores[static_cast<size_t>(i)] = score_pair(references[static_cast<size_t>(i)], outputs[static_cast<size_t>(i)], cap);
    }
  }
  for (int64_t i = 0; i < rows; ++i) {
    const size_t r = static_cast<size_t>(i);
    std::string reason;
    if (outputs[r].size() > cap) {
      ++m.outputs_too_long;
      reason = absl::StrCat("output is ", outputs[r].size(), " characters (cap ", cap, "): counted invalid");
    }
    if (references[r].size() > cap) {
      ++m.references_too_long;
      absl::StrAppend(&reason, reason.empty() ? "" : "; ", "ground truth is ", references[r].size(), " characters (cap ",
                      cap, "): not parsed");
    }
    if (outcomes[r] == RowOutcome::kOverBudget) {
      ++m.rows_over_budget;
      scores[r] = PairScores{};  // scored as an invalid output
      reason = absl::StrCat("RDKit/InChI work took over ", options.row_budget_seconds, " s: counted invalid");
    } else if (outcomes[r] == RowOutcome::kWorkerDied) {
      ++m.rows_worker_died;
      scores[r] = PairScores{};
      reason = "the worker process scoring it died (a crash in RDKit or InChI): counted invalid";
    }
    if (!reason.empty()) m.unscored.push_back(UnscoredRow{i, std::move(reason)});
  }
  std::vector<Tokens> reference_tokens, output_tokens;
  double distance = 0.0;
  int64_t valid = 0, exact = 0, exact_inchi = 0;
  for (int64_t i = 0; i < rows; ++i) {
    const PairScores& s = scores[static_cast<size_t>(i)];
    reference_tokens.push_back(character_tokens(references[static_cast<size_t>(i)]));
    output_tokens.push_back(character_tokens(outputs[static_cast<size_t>(i)]));
    distance += static_cast<double>(levenshtein(outputs[static_cast<size_t>(i)], references[static_cast<size_t>(i)]));
    valid += s.output_valid ? 1 : 0;
    exact += s.exact ? 1 : 0;
    exact_inchi += s.exact_inchi ? 1 : 0;
    m.invalid_references += s.reference_valid ? 0 : 1;
    if (s.output_valid && s.reference_valid) {
      ++m.fingerprint_pairs;
      m.maccs_fts += s.maccs;
      m.rdk_fts += s.rdk;
      m.morgan_fts += s.morgan;
    }
  }
  m.invalid_outputs = rows - valid;
  m.bleu = corpus_bleu(reference_tokens, output_tokens);
  m.levenshtein = distance / static_cast<double>(rows);
  m.validity = static_cast<double>(valid) / static_cast<double>(rows);
  m.exact_canonical = static_cast<double>(exact) / static_cast<double>(rows);
  m.exact_inchi = static_cast<double>(exact_inchi) / static_cast<double>(rows);
  if (m.fingerprint_pairs > 0) {
    const double pairs = static_cast<double>(m.fingerprint_pairs);
    m.maccs_fts /= pairs;
    m.rdk_fts /= pairs;
    m.morgan_fts /= pairs;
  }
  return m;
}

}  // namespace la3
