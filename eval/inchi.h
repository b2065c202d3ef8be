// Standard InChI of a SMILES without RDKit's InChI module (Debian builds RDKit without it):
// RDKit parses and kekulises the molecule; atoms (element, charge, isotope, radical,
// implicit hydrogens) and bonds go to IUPAC's InChI library (libinchi 1.03, GetStdINCHI) as
// a 0D inchi_Input, with RDKit's tetrahedral tags and double-bond geometry as 0D parities.
// Agreement with PyPI rdkit's MolToInchi (InChI 1.07): 3300 of the 3301 molecules of
// ChEBI-20's validation split; tests/eval/inchi_test.cc checks a fixture of them.
#pragma once

#include <optional>
#include <string>

namespace la3 {

// nullopt when RDKit cannot parse the SMILES or InChI reports an error. Thread-safe
// (the InChI library call is serialised: it is not reentrant).
std::optional<std::string> standard_inchi(const std::string& smiles);

}  // namespace la3
