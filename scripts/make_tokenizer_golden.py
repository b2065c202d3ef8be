#!/usr/bin/env python3
"""Golden files for the SentencePiece wrapper (data/tokenizer.cc).

Reference tool only (PyPI sentencepiece). Trains a small unigram model with T5's special
ids (pad 0, eos 1, unk 2, no bos) on a corpus this script writes itself (no third-party
text), then records what Python sentencepiece encodes for a set of probe strings. The
C++ test must produce identical ids from the same model.

    python3 scripts/make_tokenizer_golden.py
"""
import json
import pathlib
import random

import sentencepiece as spm

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "tokenizer"

ROLES = ["a solvent", "a metabolite", "an antibacterial agent", "a fluorochrome", "a plant growth regulator",
         "a Bronsted acid", "a human xenobiotic metabolite", "an EC 3.4.21.5 inhibitor"]
CLASSES = ["monocarboxylic acid", "organic cation", "tertiary amine", "beta-lactam", "steroid", "flavonoid",
           "carbohydrate acid derivative", "amino acid zwitterion"]
GROUPS = ["hydroxy", "carboxy", "amino", "methyl", "chloro", "nitro", "oxo", "sulfo"]
SMILES = ["CCO", "C1=CC=CC=C1", "CC(=O)O", "C[C@H](N)C(=O)O", "O=C(O)c1ccccc1O", "CN1C=NC2=C1C(=O)N(C(=O)N2C)C",
          "C/C=C/C", "F/C=C\\F", "[NH4+]", "OC[C@H]1OC(O)[C@H](O)[C@@H](O)[C@@H]1O"]


def corpus_lines(rng):
    for _ in range(3000):
        group = rng.choice(GROUPS)
        cls = rng.choice(CLASSES)
        role = rng.choice(ROLES)
        yield f"The molecule is a {group} {cls} that has a role as {role}. It derives from {rng.choice(SMILES)}."
        yield f"It is a {cls} bearing {rng.randint(1, 6)} {group} groups at positions {rng.randint(1, 9)} and {rng.randint(1, 9)}."


PROBES = [
    "The molecule is a hydroxy monocarboxylic acid that has a role as a metabolite.",
    "CC(=O)OC1=CC=CC=C1C(=O)O",
    "F/C=C\\F and C[C@@H](O)C(=O)[O-]",
    "  leading and   repeated   spaces  ",
    "Ünïcödé naïve café — 3.4.21.5",
    "",
    "zzzz qqqq xylophone",  # mostly unknown material
]


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    rng = random.Random(20261125)
    corpus = OUT / "corpus.txt"
    corpus.write_text("\n".join(corpus_lines(rng)) + "\n", encoding="utf-8")
    spm.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(OUT / "sample"), vocab_size=120, model_type="unigram",
        character_coverage=1.0, pad_id=0, eos_id=1, unk_id=2, bos_id=-1, minloglevel=2, num_threads=1)
    corpus.unlink()
    (OUT / "sample.vocab").unlink()
    sp = spm.SentencePieceProcessor(model_file=str(OUT / "sample.model"))
    expected = [{"text": text, "ids": sp.encode(text), "decoded": sp.decode(sp.encode(text))} for text in PROBES]
    (OUT / "expected.json").write_text(
        json.dumps({"sentencepiece": spm.__version__, "pieces": sp.get_piece_size(), "probes": expected},
                   ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {OUT} with sentencepiece {spm.__version__}, {sp.get_piece_size()} pieces")


if __name__ == "__main__":
    main()
