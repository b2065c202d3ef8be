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
#include <memory>

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

struct PairScores {
  bool output_valid = false, reference_valid = false, exact = false, exact_inchi = false;
  double maccs = 0.0, rdk = 0.0, morgan = 0.0;
};

std::unique_ptr<RDKit::ROMol> parse_quietly(const std::string& smiles) {
  quiet_rdkit_errors();
  if (smiles.empty()) return nullptr;
  try {
    return std::unique_ptr<RDKit::ROMol>(RDKit::SmilesToMol(smiles));
  } catch (const std::exception&) {
    return nullptr;
  }
}

PairScores score_pair(const std::string& reference, const std::string& output) {
  PairScores scores;
  const std::unique_ptr<RDKit::ROMol> out = parse_quietly(output);
  const std::unique_ptr<RDKit::ROMol> ref = parse_quietly(reference);
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

MoleculeMetrics molecule_metrics(const std::vector<std::string>& references, const std::vector<std::string>& outputs) {
  MoleculeMetrics m;
  const int64_t rows = static_cast<int64_t>(std::min(references.size(), outputs.size()));
  m.rows = rows;
  if (rows == 0) return m;
  std::vector<PairScores> scores(static_cast<size_t>(rows));
#pragma omp parallel for schedule(dynamic, 16)
  for (int64_t i = 0; i < rows; ++i) {
    scores[static_cast<size_t>(i)] = score_pair(references[static_cast<size_t>(i)], outputs[static_cast<size_t>(i)]);
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
