// The rewrite filter on hand-written good and bad rewrites of real ChEBI-20 captions (the
// validation split, LA3_SHARED_DATA_DIR/chebi20/validation.txt): one test per rejection reason.
#include "llm_client/rewrite_filter.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>

#include "data/molecule_dataset.h"

namespace la3::llm {
namespace {

const MoleculeRecord& molecule(const std::string& cid) {
  // The split lives in ../shared beside the checkout (CI provides it); a missing file is
  // reported with the reader's error, not as a missing CID.
  static absl::Status load_status;
  static const std::map<std::string, MoleculeRecord> by_cid = [] {
    std::map<std::string, MoleculeRecord> out;
    absl::StatusOr<std::vector<MoleculeRecord>> records =
        read_chebi20_tsv(std::string(LA3_SHARED_DATA_DIR) + "/chebi20/validation.txt", ReadOptions{});
    if (records.ok()) {
      for (MoleculeRecord& r : *records) out.emplace(r.cid, std::move(r));
    } else {
      load_status = records.status();
    }
    return out;
  }();
  static const MoleculeRecord missing;
  auto found = by_cid.find(cid);
  EXPECT_NE(found, by_cid.end()) << "CID " << cid << " not in validation.txt"
                                 << (load_status.ok() ? "" : ": " + load_status.ToString());
  return found == by_cid.end() ? missing : found->second;
}

// CID 92470518: "The molecule is a member of the class of pterocarpans carrying two hydroxy
// substituents at positions 6a and 9 as well as prenyl and methoxy substituents at positions
// 2 and 3 respectively. It has a role as a plant metabolite. It is a member of pterocarpans,
// a member of phenols and an aromatic ether."
constexpr const char* kPterocarpan = "92470518";
constexpr const char* kGoodPterocarpan =
    "This compound belongs to the pterocarpan class and bears hydroxy groups at positions 6a and 9, with a prenyl "
    "group at position 2 and a methoxy group at position 3. Found in plants as a metabolite, it is classified as a "
    "pterocarpan, a phenol and an aromatic ether.";

std::string first_caption(const std::string& cid) {
  const MoleculeRecord& m = molecule(cid);
  return m.captions.empty() ? "" : m.captions[0];
}

FilterVerdict check(const std::string& cid, const std::string& rewrite, const std::vector<std::string>& siblings = {},
                    const std::string& finish_reason = "stop") {
  const MoleculeRecord& m = molecule(cid);
  return check_rewrite(rewrite, finish_reason, m.captions.empty() ? "" : m.captions[0], m.smiles, siblings, FilterOptions{});
}

TEST(RewriteFilter, KeepsGoodRewritesOfRealCaptions) {
  EXPECT_TRUE(check(kPterocarpan, kGoodPterocarpan).kept) << check(kPterocarpan, kGoodPterocarpan).detail;
  // CID 25674: "The molecule is an S-ethylhomocysteine that has S-configuration at the chiral
  // centre. It has a role as an antimetabolite and a carcinogenic agent. It is an enantiomer
  // of a D-ethionine."
  const std::string ethionine =
      "An S-ethylhomocysteine with S-configuration at its chiral centre, this compound acts as an antimetabolite "
      "and as a carcinogenic agent; it is the enantiomer of D-ethionine.";
  EXPECT_TRUE(check("25674", ethionine).kept) << check("25674", ethionine).detail;
  // CID 7814: "The molecule is a phenylenediamine in which the amino functions are at positions
  // 1 and 4 of the benzene nucleus. It has a role as a hapten, a dye, a reagent and an allergen."
  const std::string diamine =
      "In this phenylenediamine the two amino groups sit at positions 1 and 4 of the benzene ring; the compound "
      "serves as a hapten, a dye, a reagent and an allergen.";
  EXPECT_TRUE(check("7814", diamine).kept) << check("7814", diamine).detail;
  // Surrounding whitespace and quotes are tolerated (and removed from the stored text).
  EXPECT_TRUE(check(kPterocarpan, std::string("  \"") + kGoodPterocarpan + "\"\n").kept);
  EXPECT_EQ(normalize_rewrite(std::string(" \"") + kGoodPterocarpan + "\" "), kGoodPterocarpan);
}

TEST(RewriteFilter, RejectsEmpty) {
  EXPECT_EQ(check(kPterocarpan, "  \n ").reason, "empty");
  EXPECT_EQ(check(kPterocarpan, "").reason, "empty");
}

TEST(RewriteFilter, RejectsTruncated) {
  EXPECT_EQ(check(kPterocarpan, kGoodPterocarpan, {}, "length").reason, "truncated");
}

TEST(RewriteFilter, RejectsLineBreaks) {
  const std::string two_paragraphs =
      "This compound belongs to the pterocarpan class and bears hydroxy groups at positions 6a and 9, with a prenyl "
      "group at position 2 and a methoxy group at position 3.\n\nFound in plants as a metabolite, it is classified "
      "as a pterocarpan, a phenol and an aromatic ether.";
  EXPECT_EQ(check(kPterocarpan, two_paragraphs).reason, "line_break");
}

TEST(RewriteFilter, RejectsAPreamble) {
  EXPECT_EQ(check(kPterocarpan, std::string("Here is the rewritten description: ") + kGoodPterocarpan).reason, "preamble");
  EXPECT_EQ(check(kPterocarpan, std::string("Sure! ") + kGoodPterocarpan).reason, "preamble");
}

TEST(RewriteFilter, RejectsTheSmiles) {
  const MoleculeRecord& m = molecule(kPterocarpan);
  const std::string with_smiles = std::string(kGoodPterocarpan) + " Its structure is " + m.smiles + ".";
  const FilterVerdict v = check(kPterocarpan, with_smiles);
  EXPECT_EQ(v.reason, "contains_smiles");
  // A tiny SMILES only counts as a whole token: "O=S(Cl)Cl" is CID 24386 (thionyl chloride).
  EXPECT_EQ(check_rewrite("Its formula is O=S(Cl)Cl here.", "stop", "x y z", "O=S(Cl)Cl", {}, FilterOptions{}).reason,
            "contains_smiles");
  EXPECT_TRUE(check_rewrite("Iron is bound by oxygen.", "stop", "Oxygen binds iron.", "O", {}, FilterOptions{}).kept);
}

TEST(RewriteFilter, RejectsALengthOutsideTheRatio) {
  const FilterVerdict short_one = check(kPterocarpan, "A pterocarpan with 6a,9-dihydroxy, 2-prenyl and 3-methoxy groups.");
  EXPECT_EQ(short_one.reason, "length_ratio");
  EXPECT_THAT(short_one.detail, ::testing::HasSubstr("outside [0.50, 2.00]"));
  const std::string padded = std::string(kGoodPterocarpan) + " " + kGoodPterocarpan + " " + kGoodPterocarpan;
  EXPECT_EQ(check(kPterocarpan, padded).reason, "length_ratio");
}

TEST(RewriteFilter, RejectsLostChemicalEntities) {
  const std::string vague =
      "This plant compound belongs to a family of aromatic ethers and phenols, carrying several hydroxy, prenyl and "
      "methoxy substituents at various places on its fused ring system, and it takes part in plant metabolism.";
  const FilterVerdict v = check(kPterocarpan, vague);
  EXPECT_EQ(v.reason, "entity_recall");
  EXPECT_THAT(v.detail, ::testing::HasSubstr("6a"));
  std::vector<std::string> missing;
  EXPECT_LT(entity_recall(first_caption(kPterocarpan), vague, &missing), 0.7);
  EXPECT_THAT(missing, ::testing::IsSupersetOf({"6a", "pterocarpans"}));
}

TEST(RewriteFilter, ExtractsNamesLocantsNumbersChargesAndStereo) {
  // CID 9813855 / 72715820-style captions.
  const std::vector<std::string> e = chemical_entities(
      "It is an (S)-3-hydroxyacyl-CoA and a conjugate acid of a (3S)-hydroxytetradecanedioyl-CoA(5-) with "
      "beta-D-glucoside, an anion at positions 2 and 3 of methanol.");
  EXPECT_THAT(e, ::testing::IsSupersetOf({"(s)-3-hydroxyacyl-coa", "(3s)-hydroxytetradecanedioyl-coa(5-)", "beta-d-glucoside",
                                          "anion", "2", "3", "methanol"}));
  EXPECT_THAT(e, ::testing::Not(::testing::Contains("the")));
}

TEST(RewriteFilter, RejectsANearDuplicateOfTheOriginal) {
  const std::string lazy =
      "The molecule is a member of the class of pterocarpans carrying two hydroxy substituents at positions 6a and 9 "
      "as well as prenyl and methoxy substituents at positions 2 and 3, respectively. It has a role as a plant "
      "metabolite. It is a member of pterocarpans, a member of phenols, and an aromatic ether.";
  const FilterVerdict v = check(kPterocarpan, lazy);
  EXPECT_EQ(v.reason, "near_duplicate_original");
  EXPECT_THAT(v.detail, ::testing::HasSubstr("ROUGE-L"));
}

TEST(RewriteFilter, RejectsANearDuplicateOfASibling) {
  const std::string twin =
      "This compound belongs to the pterocarpan class and carries hydroxy groups at positions 6a and 9, with a prenyl "
      "group at position 2 and a methoxy group at position 3. Found in plants as a metabolite, it is classified as a "
      "pterocarpan, a phenol and an aromatic ether.";
  EXPECT_TRUE(check(kPterocarpan, twin).kept);
  EXPECT_EQ(check(kPterocarpan, twin, {kGoodPterocarpan}).reason, "near_duplicate_sibling");
  const std::string different =
      "A plant metabolite of the pterocarpan family, the molecule has two hydroxy substituents (positions 6a and 9), "
      "a prenyl substituent at C-2 and a methoxy substituent at C-3; chemically it is a pterocarpan, a phenol and an "
      "aromatic ether.";
  EXPECT_TRUE(check(kPterocarpan, different, {kGoodPterocarpan}).kept) << check(kPterocarpan, different, {kGoodPterocarpan}).detail;
}

TEST(RewriteFilter, ThresholdsAboveOneTurnChecksOff) {
  FilterOptions off;
  off.max_rouge_l_to_original = off.max_jaccard_to_original = 1.5;
  const MoleculeRecord& m = molecule(kPterocarpan);
  EXPECT_TRUE(check_rewrite(first_caption(kPterocarpan), "stop", first_caption(kPterocarpan), m.smiles, {}, off).kept);
  EXPECT_DOUBLE_EQ(token_jaccard("a b c", "c b a"), 1.0);
  EXPECT_DOUBLE_EQ(token_jaccard("a b", "c d"), 0.0);
}

}  // namespace
}  // namespace la3::llm
