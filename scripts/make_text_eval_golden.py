#!/usr/bin/env python3
"""Golden text metrics (SMILES -> caption) with the reference Python packages.

Reference tool only (PyPI transformers for BertTokenizer/BertTokenizerFast, nltk 3.9.1,
rouge-score). A small uncased BERT vocabulary is built here from the sample captions (the
SciBERT vocab MolT5 uses is not redistributable here); predictions pair each sample
molecule's original caption with one of its rewrites or a perturbed copy, plus Unicode,
punctuation and empty cases. Writes tests/fixtures/eval/{text_vocab.txt,
text_predictions.tsv, text_expected.json}.

    python3 scripts/make_text_eval_golden.py
"""
import collections
import json
import pathlib
import random

import nltk
import rouge_score
from nltk.translate.bleu_score import corpus_bleu
from rouge_score import rouge_scorer
from transformers import BertTokenizer, BertTokenizerFast
from transformers.models.bert.tokenization_bert import BasicTokenizer

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "eval"


def main():
    rng = random.Random(9)
    records = [json.loads(line) for line in open(ROOT / "data" / "sample" / "validation.jsonl")]
    rows = []
    for r in records:
        out = rng.choice(r["rewrites"])
        if rng.random() < 0.3:
            words = out.split()
            rng.shuffle(words)
            out = " ".join(words[: max(1, len(words) - 3)])
        rows.append((r["smiles"], r["original"], out))
    rows += [
        ("CCO", "Ethanol is a CAFÉ naïve solvent — très polaire.", "ethanol is a cafe naive solvent, tres polaire"),
        ("CCO", "A (2S)-2-hydroxy acid; pKa≈4.2 [see ref.]", "a (2s)-2-hydroxy acid pka 4.2"),
        ("CCO", "含有 benzene 環", "benzene"),
        ("CCO", "The molecule is an alcohol.", ""),
        ("CCO", "supercalifragilisticexpialidociousnesses" * 3, "long word"),
    ]
    words = collections.Counter()
    chars = set()
    text = " ".join(g + " " + o for _, g, o in rows)

    basic = BasicTokenizer(do_lower_case=True)
    for token in basic.tokenize(text):
        words[token] += 1
        chars.update(token)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab += sorted(w for w, c in words.most_common(250))
    vocab += ["##" + s for s in ["s", "ic", "ed", "yl", "ing", "ly", "ate", "ol", "ene", "oxy"]]
    vocab += sorted(c for c in chars if c not in vocab) + sorted("##" + c for c in chars)
    vocab = list(dict.fromkeys(vocab))
    vocab.remove("benzene")  # force WordPiece splits of a frequent word
    vocab_path = OUT / "text_vocab.txt"
    vocab_path.write_text("\n".join(vocab) + "\n", encoding="utf-8")
    slow = BertTokenizer(vocab_file=str(vocab_path), do_lower_case=True)
    fast = BertTokenizerFast(vocab_file=str(vocab_path), do_lower_case=True)

    def tokens(s):
        t = fast.tokenize(s, truncation=True, max_length=512, padding="max_length")
        t = [x for x in t if x not in ("[PAD]", "[CLS]", "[SEP]")]
        assert t == slow.tokenize(s)[: len(t)], (s, t, slow.tokenize(s))
        return t

    references = [[tokens(g)] for _, g, _ in rows]
    hypotheses = [tokens(o) for _, _, o in rows]
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"])
    rouge_rows = []
    for _, g, o in rows:
        s = scorer.score(o, g)  # MolT5's argument order
        rouge_rows.append([s["rouge1"].fmeasure, s["rouge2"].fmeasure, s["rougeL"].fmeasure])
    with open(OUT / "text_predictions.tsv", "w", encoding="utf-8") as f:
        f.write("SMILES\tground truth\toutput\n")
        for smi, g, o in rows:
            f.write(f"{smi}\t{g}\t{o}\n")
    expected = {
        "nltk": nltk.__version__, "rouge_score": getattr(rouge_score, "__version__", "0.1.2"),
        "rows": len(rows),
        "reference_tokens": [r[0] for r in references], "output_tokens": hypotheses,
        "bleu2": corpus_bleu(references, hypotheses, weights=(0.5, 0.5)),
        "bleu4": corpus_bleu(references, hypotheses, weights=(0.25, 0.25, 0.25, 0.25)),
        "rouge_rows": rouge_rows,
        "rouge1": sum(r[0] for r in rouge_rows) / len(rows),
        "rouge2": sum(r[1] for r in rouge_rows) / len(rows),
        "rougeL": sum(r[2] for r in rouge_rows) / len(rows),
    }
    (OUT / "text_expected.json").write_text(json.dumps(expected, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
    print({k: v for k, v in expected.items() if not isinstance(v, list)})


if __name__ == "__main__":
    main()
