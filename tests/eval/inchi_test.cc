// Standard InChI through libinchi against PyPI rdkit's MolToInchi (tests/fixtures/eval/
// inchi_expected.json from scripts/make_eval_golden.py): every sample molecule and hard
// cases (stereo centres with implicit H, E/Z, charges, isotopes, radicals, salts).
#include "eval/inchi.h"

#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>

namespace la3 {
namespace {

TEST(Inchi, MatchesRdkitMolToInchi) {
  std::ifstream stream(std::string(LA3_TEST_FIXTURES_DIR) + "/eval/inchi_expected.json");
  const nlohmann::json golden = nlohmann::json::parse(stream);
  int checked = 0;
  for (const auto& molecule : golden["molecules"]) {
    const std::string smiles = molecule["smiles"].get<std::string>();
    const std::optional<std::string> inchi = standard_inchi(smiles);
    ASSERT_TRUE(inchi.has_value()) << smiles;
    EXPECT_EQ(*inchi, molecule["inchi"].get<std::string>()) << smiles;
    ++checked;
  }
  EXPECT_GT(checked, 370);
}

TEST(Inchi, StereoAndInvalidInput) {
  // Enantiomers and E/Z isomers differ; a different spelling of one molecule does not.
  EXPECT_NE(standard_inchi("C[C@H](N)C(=O)O"), standard_inchi("C[C@@H](N)C(=O)O"));
  EXPECT_EQ(standard_inchi("C[C@H](N)C(=O)O"), standard_inchi("N[C@@H](C)C(=O)O"));
  EXPECT_NE(standard_inchi("F/C=C/F"), standard_inchi("F/C=C\\F"));
  EXPECT_EQ(standard_inchi("F/C=C\\F"), standard_inchi("F\\C=C/F"));
  EXPECT_FALSE(standard_inchi("C1CC").has_value());
  EXPECT_FALSE(standard_inchi("").has_value());
}

}  // namespace
}  // namespace la3
