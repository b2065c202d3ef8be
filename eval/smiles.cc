#include "eval/smiles.h"

#include <GraphMol/GraphMol.h>
#include <GraphMol/SmilesParse/SmilesParse.h>
#include <GraphMol/SmilesParse/SmilesWrite.h>
#include <RDGeneral/RDLog.h>

#include <memory>
#include <mutex>

namespace la3 {

namespace {

std::unique_ptr<RDKit::ROMol> parse(const std::string& smiles) {
  quiet_rdkit_errors();
  if (smiles.empty()) return nullptr;
  try {
    return std::unique_ptr<RDKit::ROMol>(RDKit::SmilesToMol(smiles));
  } catch (const std::exception&) {
    return nullptr;  // RDKit throws for some malformed input instead of returning null
  }
}

}  // namespace

void quiet_rdkit_errors() {
  static std::once_flag once;
  std::call_once(once, [] { boost::logging::disable_logs("rdApp.error"); });
}

bool is_valid_smiles(const std::string& smiles) { return parse(smiles) != nullptr; }

std::optional<std::string> canonical_smiles(const std::string& smiles) {
  std::unique_ptr<RDKit::ROMol> molecule = parse(smiles);
  if (!molecule) return std::nullopt;
  return RDKit::MolToSmiles(*molecule, /*doIsomericSmiles=*/true);
}

}  // namespace la3
