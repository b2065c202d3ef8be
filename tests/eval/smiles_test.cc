// RDKit-backed SMILES checks.
#include "eval/smiles.h"

#include <gtest/gtest.h>

namespace la3 {
namespace {

TEST(Smiles, ValidityAndCanonicalForm) {
  EXPECT_TRUE(is_valid_smiles("CCO"));
  EXPECT_TRUE(is_valid_smiles("C/C=C\\C"));
  EXPECT_FALSE(is_valid_smiles("C1CC"));       // unclosed ring
  EXPECT_FALSE(is_valid_smiles("C(C"));        // unbalanced branch
  EXPECT_FALSE(is_valid_smiles("c1cccc1"));    // cannot be kekulised
  EXPECT_FALSE(is_valid_smiles("CX"));         // not an element
  EXPECT_FALSE(is_valid_smiles(""));
  EXPECT_EQ(canonical_smiles("OCC"), canonical_smiles("CCO"));
  EXPECT_EQ(*canonical_smiles("C1=CC=CC=C1"), "c1ccccc1");
  // Stereo is kept: the two enantiomers of alanine differ.
  EXPECT_NE(canonical_smiles("C[C@H](N)C(=O)O"), canonical_smiles("C[C@@H](N)C(=O)O"));
  EXPECT_FALSE(canonical_smiles("N(").has_value());
}

}  // namespace
}  // namespace la3
