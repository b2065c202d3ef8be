#!/usr/bin/env python3
"""Generates the bundled sample dataset (data/sample/) for the CPU demo and tests.

Reference tool only (PyPI rdkit, sentencepiece); the product reads the files it writes.
No third-party text: molecules are enumerated here from small building blocks and every
caption is composed from facts RDKit computes about the molecule (formula, weight, rings,
functional groups), in three phrasings: the "original" caption and two "rewrites", the
shape of LaChEBI-20 (k = 2).

Writes:
  data/sample/train.jsonl, data/sample/validation.jsonl   our augmented JSONL format
  data/sample/spiece.model                                  a SentencePiece model (T5 ids)

    python3 scripts/make_sample_dataset.py
"""
import json
import pathlib
import random

import sentencepiece as spm
from rdkit import Chem, RDLogger
from rdkit.Chem import Descriptors, rdMolDescriptors

RDLogger.DisableLog("rdApp.*")
ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "data" / "sample"

CHAINS = ["C", "CC", "CCC", "CCCC", "CC(C)", "CCCCC", "CC(C)C", "CCCCCC"]
RINGS = ["c1ccccc1", "C1CCCCC1", "c1ccncc1", "C1CCOC1", "c1ccoc1"]
GROUPS = {  # SMILES fragment appended to a scaffold -> name
    "O": "hydroxy", "C(=O)O": "carboxy", "N": "amino", "Cl": "chloro", "F": "fluoro", "C(=O)N": "carbamoyl",
    "OC": "methoxy", "C#N": "cyano", "S": "sulfanyl", "[N+](=O)[O-]": "nitro", "C=O": "formyl",
}
PATTERNS = {  # SMARTS -> class phrase
    "[CX3](=O)[OX2H1]": "a carboxylic acid", "[OX2H][CX4]": "an alcohol", "[NX3;H2][CX4]": "a primary amine",
    "c1ccccc1": "a benzenoid aromatic compound", "[#7;r6;a]": "a pyridine derivative", "[Cl,F]": "an organohalogen compound",
    "[CX3](=O)[NX3]": "a carboxamide", "C#N": "a nitrile", "[SX2H]": "a thiol", "[N+](=O)[O-]": "a nitro compound",
    "[CX3H1](=O)": "an aldehyde", "[OX2]([CH3])": "a methyl ether",
}


def enumerate_molecules(rng):
    seen = {}
    scaffolds = CHAINS + RINGS + [c + r for c in CHAINS[:4] for r in RINGS]
    for scaffold in scaffolds:
        for first in GROUPS:
            for second in [None] + list(GROUPS):
                # scaffold-first, or second-scaffold-first for two substituents
                candidate = scaffold + first if second is None else second + scaffold + first
                mol = Chem.MolFromSmiles(candidate)
                if mol is None or mol.GetNumHeavyAtoms() > 24:
                    continue
                canonical = Chem.MolToSmiles(mol)
                if canonical not in seen:
                    groups = [GROUPS[first]] + ([GROUPS[second]] if second is not None else [])
                    seen[canonical] = (mol, groups)
    items = sorted(seen.items())
    rng.shuffle(items)
    return items


def facts(mol, groups):
    formula = rdMolDescriptors.CalcMolFormula(mol)
    weight = Descriptors.MolWt(mol)
    rings = rdMolDescriptors.CalcNumRings(mol)
    aromatic = rdMolDescriptors.CalcNumAromaticRings(mol)
    classes = [phrase for smarts, phrase in PATTERNS.items() if mol.HasSubstructMatch(Chem.MolFromSmarts(smarts))]
    donors = rdMolDescriptors.CalcNumHBD(mol)
    return formula, weight, rings, aromatic, classes or ["an organic compound"], donors, sorted(set(groups))


def join(words):
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def captions(mol, groups):
    formula, weight, rings, aromatic, classes, donors, group_names = facts(mol, groups)
    ring_text = "no ring" if rings == 0 else f"{rings} ring{'s' if rings > 1 else ''}"
    if aromatic:
        ring_text += f", {aromatic} of them aromatic" if rings > 1 else ", which is aromatic"
    substituents = join([f"{g}" for g in group_names])
    original = (f"The molecule is {classes[0]} with molecular formula {formula}. It carries {substituents} "
                f"substituents and has {ring_text}. It is {join(classes)}.")
    rewrite_1 = (f"This compound, {formula}, is {join(classes)} bearing {substituents} groups; "
                 f"its structure contains {ring_text} and {donors} hydrogen bond donor{'s' if donors != 1 else ''}.")
    rewrite_2 = (f"A {substituents}-substituted molecule of mass {weight:.1f} with {ring_text}. "
                 f"It can be described as {classes[-1]} and has formula {formula}.")
    return original, [rewrite_1, rewrite_2]


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    rng = random.Random(20261125)
    items = enumerate_molecules(rng)[:360]
    records = []
    for index, (smiles, (mol, groups)) in enumerate(items):
        original, rewrites = captions(mol, groups)
        records.append({"cid": f"la3-sample-{index:04d}", "smiles": smiles, "original": original, "rewrites": rewrites,
                        "model": "template", "prompt_id": "rdkit-facts-v1"})
    split = len(records) - 40
    for name, part in (("train", records[:split]), ("validation", records[split:])):
        with open(OUT / f"{name}.jsonl", "w", encoding="utf-8") as f:
            for record in part:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
    corpus = OUT / "corpus.tmp"
    with open(corpus, "w", encoding="utf-8") as f:
        for r in records[:split]:
            f.write(r["smiles"] + "\n" + r["original"] + "\n" + "\n".join(r["rewrites"]) + "\n")
    spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(OUT / "spiece"), vocab_size=256,
                                   model_type="unigram", character_coverage=1.0, pad_id=0, eos_id=1, unk_id=2,
                                   bos_id=-1, minloglevel=2, num_threads=1)
    corpus.unlink()
    (OUT / "spiece.vocab").unlink()
    print(f"{len(records)} molecules: {split} train, {len(records) - split} validation -> {OUT}")


if __name__ == "__main__":
    main()
