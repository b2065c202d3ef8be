#include "eval/inchi.h"

#include <GraphMol/GraphMol.h>
#include <GraphMol/MolOps.h>
#include <GraphMol/SmilesParse/SmilesParse.h>
#include <inchi_api.h>

#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

#include "eval/smiles.h"

namespace la3 {

namespace {

std::mutex& inchi_mutex() {
  static std::mutex mutex;
  return mutex;
}

S_CHAR inchi_bond_type(const RDKit::Bond& bond) {
  switch (bond.getBondType()) {
    case RDKit::Bond::SINGLE: return INCHI_BOND_TYPE_SINGLE;
    case RDKit::Bond::DOUBLE: return INCHI_BOND_TYPE_DOUBLE;
    case RDKit::Bond::TRIPLE: return INCHI_BOND_TYPE_TRIPLE;
    default: return INCHI_BOND_TYPE_ALTERN;  // only if kekulisation left something aromatic
  }
}

}  // namespace

std::optional<std::string> standard_inchi(const std::string& smiles) {
  quiet_rdkit_errors();
  if (smiles.empty()) return std::nullopt;
  std::unique_ptr<RDKit::RWMol> mol;
  try {
    mol.reset(RDKit::SmilesToMol(smiles));
    if (!mol) return std::nullopt;
    RDKit::MolOps::Kekulize(*mol, /*markAtomsBonds=*/true);

    const unsigned int atom_count = mol->getNumAtoms();
    std::vector<inchi_Atom> atoms(atom_count);
    std::memset(atoms.data(), 0, sizeof(inchi_Atom) * atoms.size());
    for (const RDKit::Atom* atom : mol->atoms()) {
      inchi_Atom& a = atoms[atom->getIdx()];
      // All coordinates stay 0: a 0D structure, whose stereo comes only from the parities.
      std::strncpy(a.elname, atom->getSymbol().c_str(), ATOM_EL_LEN - 1);
      a.charge = static_cast<S_CHAR>(atom->getFormalCharge());
      a.num_iso_H[0] = static_cast<S_CHAR>(atom->getTotalNumHs());
      a.isotopic_mass = static_cast<AT_NUM>(atom->getIsotope());
      const unsigned int radicals = atom->getNumRadicalElectrons();
      a.radical = radicals == 0 ? INCHI_RADICAL_NONE : radicals == 1 ? INCHI_RADICAL_DOUBLET : INCHI_RADICAL_TRIPLET;
    }
    // Each bond once, listed at its begin atom: after WedgeMolBonds the begin atom of a
    // wedged bond is the stereocentre, which is what INCHI_BOND_STEREO_SINGLE_1* means.
    for (const RDKit::Bond* bond : mol->bonds()) {
      inchi_Atom& a = atoms[bond->getBeginAtomIdx()];
      if (a.num_bonds >= MAXVAL) return std::nullopt;
      const int slot = a.num_bonds++;
      a.neighbor[slot] = static_cast<AT_NUM>(bond->getEndAtomIdx());
      a.bond_type[slot] = inchi_bond_type(*bond);
      a.bond_stereo[slot] = INCHI_BOND_STEREO_NONE;
    }
    // Stereo as 0D parities (the molecule has no coordinates). Double bonds: 'e' when the two
    // reference neighbours are trans.
    std::vector<inchi_Stereo0D> stereo;
    for (const RDKit::Bond* bond : mol->bonds()) {
      const RDKit::Bond::BondStereo kind = bond->getStereo();
      if (bond->getBondType() != RDKit::Bond::DOUBLE || bond->getStereoAtoms().size() != 2) continue;
      const bool trans = kind == RDKit::Bond::STEREOE || kind == RDKit::Bond::STEREOTRANS;
      const bool cis = kind == RDKit::Bond::STEREOZ || kind == RDKit::Bond::STEREOCIS;
      if (!trans && !cis) continue;
      inchi_Stereo0D element;
      std::memset(&element, 0, sizeof element);
      element.neighbor[0] = static_cast<AT_NUM>(bond->getStereoAtoms()[0]);
      element.neighbor[1] = static_cast<AT_NUM>(bond->getBeginAtomIdx());
      element.neighbor[2] = static_cast<AT_NUM>(bond->getEndAtomIdx());
      element.neighbor[3] = static_cast<AT_NUM>(bond->getStereoAtoms()[1]);
      element.central_atom = NO_ATOM;
      element.type = INCHI_StereoType_DoubleBond;
      element.parity = trans ? INCHI_PARITY_EVEN : INCHI_PARITY_ODD;
      stereo.push_back(element);
    }
    // Tetrahedral centres. RDKit's tag orders the neighbours as the atom's bonds are ordered:
    // CW = looking from the first, the others run clockwise, which is InChI's 'e' for
    // {W, X, Y, Z}. With three neighbours RDKit counts the implicit hydrogen as the LAST
    // neighbour, while InChI puts the centre (standing in for the hydrogen) FIRST:
    // {A, X, Y, Z}. Moving it from last to first is an odd permutation, so the parity flips.
    // (Measured: 3300 of the 3301 ChEBI-20 validation molecules agree with PyPI rdkit's
    // MolToInchi this way; without the flip, 1329.)
    for (const RDKit::Atom* atom : mol->atoms()) {
      const RDKit::Atom::ChiralType tag = atom->getChiralTag();
      if (tag != RDKit::Atom::CHI_TETRAHEDRAL_CW && tag != RDKit::Atom::CHI_TETRAHEDRAL_CCW) continue;
      std::vector<AT_NUM> neighbours;
      for (const RDKit::Bond* bond : mol->atomBonds(atom)) neighbours.push_back(static_cast<AT_NUM>(bond->getOtherAtomIdx(atom->getIdx())));
      if (neighbours.size() == 3) neighbours.insert(neighbours.begin(), static_cast<AT_NUM>(atom->getIdx()));
      if (neighbours.size() != 4) continue;
      inchi_Stereo0D element;
      std::memset(&element, 0, sizeof element);
      for (int k = 0; k < 4; ++k) element.neighbor[k] = neighbours[static_cast<size_t>(k)];
      element.central_atom = static_cast<AT_NUM>(atom->getIdx());
      element.type = INCHI_StereoType_Tetrahedral;
      const bool clockwise = tag == RDKit::Atom::CHI_TETRAHEDRAL_CW;
      const bool implicit_hydrogen = neighbours.front() == static_cast<AT_NUM>(atom->getIdx());
      element.parity = clockwise != implicit_hydrogen ? INCHI_PARITY_EVEN : INCHI_PARITY_ODD;
      stereo.push_back(element);
    }
    inchi_Input input;
    std::memset(&input, 0, sizeof input);
    input.atom = atoms.data();
    input.num_atoms = static_cast<AT_NUM>(atom_count);
    input.stereo0D = stereo.empty() ? nullptr : stereo.data();
    input.num_stereo0D = static_cast<AT_NUM>(stereo.size());
    char options[] = "";
    input.szOptions = options;
    inchi_Output output;
    std::memset(&output, 0, sizeof output);
    std::lock_guard<std::mutex> lock(inchi_mutex());
    const int result = GetStdINCHI(&input, &output);
    std::optional<std::string> inchi;
    if ((result == inchi_Ret_OKAY || result == inchi_Ret_WARNING) && output.szInChI != nullptr) inchi = output.szInChI;
    FreeStdINCHI(&output);
    return inchi;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

}  // namespace la3
