// SMILES checks with RDKit: the header exposes only std types, so code that uses it never
// compiles RDKit's (heavy) headers.
#pragma once

#include <optional>
#include <string>

namespace la3 {

// True when RDKit parses (and sanitises) the SMILES into a molecule. Thread-safe.
bool is_valid_smiles(const std::string& smiles);

// Turns off RDKit's per-failure error log (a model's invalid outputs are expected). Idempotent.
void quiet_rdkit_errors();

// RDKit's canonical isomeric SMILES, or nullopt when the SMILES does not parse.
std::optional<std::string> canonical_smiles(const std::string& smiles);

}  // namespace la3
