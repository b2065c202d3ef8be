#!/usr/bin/env python3
"""Golden molecule metrics with the reference Python packages (reference tool only).

Predictions are made here from the project's own sample molecules (data/sample), with
perturbations that exercise every metric: exact copies, other valid spellings of the same
molecule (RDKit random SMILES), single-character deletions and substitutions (often
invalid), stereo flips (/ <-> \\), other molecules, empty outputs. Metrics follow MolT5's
mol_translation_metrics.py and fingerprint_metrics.py, with exact match by canonical SMILES
(the InChI column is also recorded for when libinchi lands).

    pip install rdkit nltk==3.9.1 python-Levenshtein
    python3 scripts/make_eval_golden.py
"""
import json
import pathlib
import random

import Levenshtein
import nltk
import rdkit
from nltk.translate.bleu_score import corpus_bleu
from rdkit import Chem, DataStructs, RDLogger
from rdkit.Chem import AllChem, MACCSkeys

RDLogger.DisableLog("rdApp.*")
ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "eval"


def perturb(smiles, rng, pool):
    kind = rng.randrange(7)
    if kind == 0:
        return smiles
    if kind == 1:
        m = Chem.MolFromSmiles(smiles)
        return Chem.MolToSmiles(m, doRandom=True, canonical=False)
    if kind == 2 and len(smiles) > 1:
        i = rng.randrange(len(smiles))
        return smiles[:i] + smiles[i + 1:]
    if kind == 3:
        i = rng.randrange(len(smiles))
        return smiles[:i] + rng.choice("CNOc()=1") + smiles[i + 1:]
    if kind == 4:
        return smiles.replace("/", "#TMP#").replace("\\", "/").replace("#TMP#", "\\") if ("/" in smiles or "\\" in smiles) else "C/C=C\\C"
    if kind == 5:
        return rng.choice(pool)
    return ""


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    rng = random.Random(5)
    records = [json.loads(line) for line in open(ROOT / "data" / "sample" / "validation.jsonl")]
    records += [json.loads(line) for line in open(ROOT / "data" / "sample" / "train.jsonl")][:80]
    pool = [r["smiles"] for r in records]
    rows = [(r["original"], r["smiles"], perturb(r["smiles"], rng, pool)) for r in records]
    rows.append(("A stereo alkene.", "F/C=C\\F", "F/C=C/F"))
    rows.append(("A stereo alkene.", "F/C=C\\F", "F\\C=C/F"))  # same molecule written differently
    with open(OUT / "molecule_predictions.tsv", "w") as f:
        f.write("description\tground truth\toutput\n")
        for d, g, o in rows:
            f.write(f"{d}\t{g}\t{o}\n")

    references = [[list(g)] for _, g, _ in rows]
    hypotheses = [list(o) for _, _, o in rows]
    bleu = corpus_bleu(references, hypotheses)
    levenshtein = sum(Levenshtein.distance(o, g) for _, g, o in rows) / len(rows)
    exact_canonical = exact_inchi = valid = 0
    maccs, rdk, morgan = [], [], []
    for _, g, o in rows:
        mo, mg = Chem.MolFromSmiles(o) if o else None, Chem.MolFromSmiles(g)
        if mo is None:
            continue
        valid += 1
        exact_canonical += Chem.MolToSmiles(mo) == Chem.MolToSmiles(mg)
        exact_inchi += Chem.MolToInchi(mo) == Chem.MolToInchi(mg)
        maccs.append(DataStructs.FingerprintSimilarity(MACCSkeys.GenMACCSKeys(mg), MACCSkeys.GenMACCSKeys(mo),
                                                       metric=DataStructs.TanimotoSimilarity))
        rdk.append(DataStructs.FingerprintSimilarity(Chem.RDKFingerprint(mg), Chem.RDKFingerprint(mo),
                                                     metric=DataStructs.TanimotoSimilarity))
        morgan.append(DataStructs.TanimotoSimilarity(AllChem.GetMorganFingerprint(mg, 2),
                                                     AllChem.GetMorganFingerprint(mo, 2)))
    n = len(rows)
    expected = {"rdkit": rdkit.__version__, "nltk": nltk.__version__, "rows": n, "bleu": bleu,
                "exact_canonical": exact_canonical / n, "exact_inchi": exact_inchi / n,
                "levenshtein": levenshtein, "validity": valid / n, "fingerprint_pairs": len(maccs),
                "maccs_fts": sum(maccs) / len(maccs), "rdk_fts": sum(rdk) / len(rdk),
                "morgan_fts": sum(morgan) / len(morgan)}
    (OUT / "molecule_expected.json").write_text(json.dumps(expected, indent=1) + "\n")

    # Standard InChI of every sample molecule plus hard cases (stereo centres with and without
    # implicit H, double-bond geometry, charges, isotopes, radicals, salts).
    smiles = [json.loads(line)["smiles"] for name in ("train", "validation")
              for line in open(ROOT / "data" / "sample" / f"{name}.jsonl")]
    smiles += ["C[C@H](N)C(=O)O", "C[C@@H](N)C(=O)O", "F[C@](Cl)(Br)I", "F/C=C/F", "F/C=C\\F",
               "C/C=C/C=C\\C", "[NH4+].[Cl-]", "[2H]C([2H])([2H])O", "[13CH4]", "[CH3]", "[O-][N+](=O)c1ccccc1",
               "OC[C@H]1OC(O)[C@H](O)[C@@H](O)[C@@H]1O", "C1CC/C=C/CCC1", "CC(=O)O[Na]"]
    inchi = [{"smiles": smi, "inchi": Chem.MolToInchi(Chem.MolFromSmiles(smi))} for smi in smiles]
    (OUT / "inchi_expected.json").write_text(json.dumps({"rdkit": rdkit.__version__, "molecules": inchi}, indent=0) + "\n")
    print(json.dumps(expected, indent=1))


if __name__ == "__main__":
    main()
