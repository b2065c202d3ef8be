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
};

// references[i] is the ground truth of outputs[i]. Fingerprints are computed in parallel
// (OpenMP) when available.
MoleculeMetrics molecule_metrics(const std::vector<std::string>& references, const std::vector<std::string>& outputs);

// Levenshtein distance (insertions, deletions, substitutions of bytes).
int64_t levenshtein(const std::string& a, const std::string& b);

}  // namespace la3
