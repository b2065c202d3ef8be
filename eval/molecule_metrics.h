// Caption -> SMILES metrics with the definitions of MolT5's evaluation scripts
// (mol_translation_metrics.py, fingerprint_metrics.py):
//   bleu             nltk corpus_bleu over the characters of the raw SMILES strings
//   exact_inchi      outputs whose standard InChI equals the reference's (MolT5's exact
//                    match), over all rows; a parse failure is a miss
//   exact_canonical  the same by RDKit canonical isomeric SMILES (second column)
//   levenshtein      edit distance of the raw strings, averaged over all rows
//   validity         outputs RDKit parses, over all rows
//   maccs/rdk/morgan Tanimoto similarity over rows whose output and reference both parse:
//                    MACCS keys, RDKit topological fingerprint (RDKit defaults), Morgan
//                    radius 2 unhashed count fingerprint (AllChem.GetMorganFingerprint(m, 2))
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace la3 {

// Guards against degenerate rows (one long prediction must not block an evaluation).
struct MoleculeMetricsOptions {
  // SMILES longer than this many characters are not given to RDKit: such an output counts as
  // invalid, such a reference as unparseable. ChEBI-20's longest SMILES has about 2,000.
  size_t max_smiles_chars = 4096;
  // Wall-clock seconds of RDKit/InChI work per row (budgeted_rows.h: worker processes). A row
  // over it is scored as an invalid output. 0 = no budget: rows run on this process's
  // threads (OpenMP).
  double row_budget_seconds = 10.0;
  // Worker processes under a budget; 0 = OpenMP's thread count (OMP_NUM_THREADS), else the cores.
  int workers = 0;
};

// A row that was not scored in full, and why ("output is 10000000 characters (cap 4096)").
struct UnscoredRow {
  int64_t row = 0;  // index into references/outputs
  std::string reason;
};

struct MoleculeMetrics {
  int64_t rows = 0;
  double bleu = 0.0;
  double exact_inchi = 0.0;
  double exact_canonical = 0.0;
  double levenshtein = 0.0;
  double validity = 0.0;
  double maccs_fts = 0.0;
  double rdk_fts = 0.0;
  double morgan_fts = 0.0;
  int64_t fingerprint_pairs = 0;     // rows scored by the fingerprint metrics
  int64_t invalid_outputs = 0;       // outputs RDKit rejects
  int64_t invalid_references = 0;    // references RDKit rejects (left out of the fingerprints)
  int64_t outputs_too_long = 0;      // outputs over max_smiles_chars (counted invalid)
  int64_t references_too_long = 0;   // references over max_smiles_chars (counted invalid)
  int64_t rows_over_budget = 0;      // rows whose RDKit work overran row_budget_seconds
  int64_t rows_worker_died = 0;      // rows whose worker process died (a crash in RDKit/InChI)
  std::vector<UnscoredRow> unscored;  // each of the rows above, in row order
  std::string note;                   // e.g. why the budget could not be applied
};

// references[i] is the ground truth of outputs[i]. The RDKit work runs in parallel: worker
// processes under a per-row budget, or OpenMP threads without one. The string metrics (BLEU,
// Levenshtein) always see the whole strings.
MoleculeMetrics molecule_metrics(const std::vector<std::string>& references, const std::vector<std::string>& outputs,
                                 const MoleculeMetricsOptions& options = {});

// Levenshtein distance (insertions, deletions, substitutions of bytes).
int64_t levenshtein(const std::string& a, const std::string& b);

}  // namespace la3
