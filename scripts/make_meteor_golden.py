#!/usr/bin/env python3
"""Golden METEOR, Porter stems and WordNet lemma names with nltk 3.9.1.

Reference tool only. MolT5's text metric calls nltk's meteor_score([reference], hypothesis)
on BERT WordPiece tokens; eval/meteor.cc reproduces it. The WordNet data is Debian's
wordnet-base (/usr/share/wordnet by default, or the first argument). That package has no
`lexnames` file, which nltk's WordNetCorpusReader insists on (it only names the lexicographer
files; METEOR never uses it), so a temporary directory gets symlinks to the data files plus
the standard WordNet 3.0 lexnames list.

Writes tests/fixtures/eval/meteor_expected.json and tests/fixtures/eval/porter_expected.json.

    python3 scripts/make_meteor_golden.py [/usr/share/wordnet]
"""
import json
import pathlib
import random
import re
import sys
import tempfile

import warnings

import nltk
from nltk.corpus.reader.wordnet import WordNetCorpusReader
from nltk.stem.porter import PorterStemmer
from nltk.translate.meteor_score import meteor_score

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "eval"

# WordNet 3.0's lexicographer file list (dict/lexnames): number, name, syntactic category.
LEXNAMES = [
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact",
    "noun.attribute", "noun.body", "noun.cognition", "noun.communication", "noun.event",
    "noun.feeling", "noun.food", "noun.group", "noun.location", "noun.motive", "noun.object",
    "noun.person", "noun.phenomenon", "noun.plant", "noun.possession", "noun.process",
    "noun.quantity", "noun.relation", "noun.shape", "noun.state", "noun.substance", "noun.time",
    "verb.body", "verb.change", "verb.cognition", "verb.communication", "verb.competition",
    "verb.consumption", "verb.contact", "verb.creation", "verb.emotion", "verb.motion",
    "verb.perception", "verb.possession", "verb.social", "verb.stative", "verb.weather",
    "adj.ppl",
]
CATEGORY = {"adj": 3, "adv": 4, "noun": 1, "verb": 2}

TRICKY_WORDS = """
generalizations oscillators dying lying tying skies news proceed exceeding exceed succeed
agreed feed bled plastered motoring sing caresses ponies ties caress cats conflated troubled
sized hopping tanned falling hissing fizzed failing filing happy sky enjoy spy fly flies tried
spied relational conditional rational valenci hesitanci digitizer conformabli radicalli
differentli vileli analogousli vietnamization predication operator feudalism decisiveness
hopefulness callousness formaliti sensitiviti sensibiliti fulli analogi triplicate formative
formalize electriciti electrical hopeful goodness revival allowance inference airliner
gyroscopic adjustable defensible irritant replacement adjustment dependent adoption homologou
communism activate angulariti homologous effective bowdlerize probate rate cease controll roll
ly ying innings inning outings outing cannings canning howe cry is as a i s y ys yy eed ied ies
lies died dies ied tied pied abbey obey toy syzygy trouble oats trees ivy troubles private
oaten orrery generously possibly logically hydroxylation methylated aromaticity
""".split()

# Extra sentences where WordNet synonyms, stems and case folding matter (nltk's own doctest
# examples among them).
HAND_ROWS = [
    ("It is a guide to action that ensures that the military will forever heed Party commands",
     "It is a guide to action which ensures that the military always obeys the commands of the party"),
    ("It is the guiding principle which guarantees the military forces always being under the command of the Party",
     "It is to insure the troops forever hearing the activity guidebook that party direct"),
    ("this is a cat", "non matching hypothesis"),
    ("the dog runs quickly to the big house", "the domestic_dog ran fast toward a large home"),
    ("the molecule has a large ring", "the molecule possesses a big band"),
    ("the acid is a strong compound", "the acid is a potent chemical compound"),
    ("a b c d e", "e d c b a"),
    ("Ethanol is a CAFÉ naïve solvent", "ethanol is a café naive solvent"),
    ("İstanbul ΟΔΟΣ ΟΔΟΣ.", "i̇stanbul οδος οδος"),
    ("the molecule is an alcohol", ""),
    ("", "the molecule is an alcohol"),
    ("", ""),
    ("the the the", "the"),
    ("geese leaves axes children better best ran", "goose leaf axis child good good run"),
]


def make_wordnet(source_dir):
    # Without an OMW reader nltk warns that multilingual functions are off; METEOR is English.
    warnings.filterwarnings("ignore", message="The multilingual functions")
    tmp = tempfile.TemporaryDirectory(prefix="la3_wordnet_")
    root = pathlib.Path(tmp.name)
    for path in pathlib.Path(source_dir).iterdir():
        (root / path.name).symlink_to(path)
    with open(root / "lexnames", "w") as f:
        for number, name in enumerate(LEXNAMES):
            f.write(f"{number:02d}\t{name}\t{CATEGORY[name.split('.')[0]]}\n")
    reader = LocalWordNet(str(root), None)
    dog = {lemma.name() for s in reader.synsets("dog") for lemma in s.lemmas()}
    assert {"dog", "domestic_dog", "Canis_familiaris", "frank", "hotdog"} <= dog, dog
    return tmp, reader


class LocalWordNet(WordNetCorpusReader):
    """nltk's reader without the OMW version mapping.

    The constructor maps the loaded WordNet onto nltk_data's own "wordnet" corpus for the
    multilingual (OMW) functions, which needs that corpus downloaded. English synsets never
    use the mapping, so it is skipped.
    """

    def map_wn(self, version="wordnet"):
        return None


class NoWordNet:
    """What eval/meteor.cc does without WordNet data: the synonym stage matches nothing."""

    def synsets(self, _word):
        return []


def words_of(text):
    return re.findall(r"\w+|[^\w\s]", text.lower())


def main():
    wordnet_dir = sys.argv[1] if len(sys.argv) > 1 else "/usr/share/wordnet"
    tmp, wn = make_wordnet(wordnet_dir)
    rng = random.Random(17)
    text = json.load(open(OUT / "text_expected.json"))
    records = [json.loads(line) for name in ("validation", "train")
               for line in open(ROOT / "data" / "sample" / f"{name}.jsonl")]

    rows = []
    for reference, output in zip(text["reference_tokens"], text["output_tokens"]):
        rows.append(("wordpiece", reference, output))
    # Plain words: caption against a rewrite, and against a copy with some words replaced by a
    # WordNet synonym (so the synonym stage really fires) and a few shuffled.
    for r in records[:60]:
        rows.append(("caption", words_of(r["original"]), words_of(rng.choice(r["rewrites"]))))
    for r in records[60:120]:
        hypothesis = []
        for word in words_of(r["original"]):
            names = sorted({l.name() for s in wn.synsets(word) for l in s.lemmas()
                            if "_" not in l.name() and l.name() != word})
            hypothesis.append(rng.choice(names) if names and rng.random() < 0.4 else word)
        if rng.random() < 0.5:
            i, j = rng.randrange(len(hypothesis)), rng.randrange(len(hypothesis))
            hypothesis[i], hypothesis[j] = hypothesis[j], hypothesis[i]
        rows.append(("synonyms", words_of(r["original"]), hypothesis))
    for reference, hypothesis in HAND_ROWS:
        rows.append(("hand", reference.split(), hypothesis.split()))

    meteor_rows = []
    for kind, reference, hypothesis in rows:
        meteor_rows.append({
            "kind": kind,
            "reference": reference,
            "hypothesis": hypothesis,
            "meteor": meteor_score([reference], hypothesis, wordnet=wn),
            "meteor_without_wordnet": meteor_score([reference], hypothesis, wordnet=NoWordNet()),
        })
    changed = sum(r["meteor"] != r["meteor_without_wordnet"] for r in meteor_rows)
    print(f"{len(meteor_rows)} METEOR rows, {changed} changed by WordNet synonyms")

    caption_words = sorted({w for r in records for t in [r["original"]] + r["rewrites"]
                            for w in words_of(t)})
    lemma_words = caption_words + ["dog", "running", "geese", "leaves", "better", "ran", "axes",
                                   "best", "Dog", "fast", "home", "big", "ΟΔΟΣ", "abaci"]
    lemma_names = {w: sorted({l.name() for s in wn.synsets(w) for l in s.lemmas()})
                   for w in lemma_words}
    json.dump({"nltk": nltk.__version__, "wordnet": "Debian wordnet-base (WordNet 3.0)",
               "rows": meteor_rows, "lemma_names": lemma_names},
              open(OUT / "meteor_expected.json", "w"), ensure_ascii=False, indent=0)

    stemmer = PorterStemmer()
    stem_words = list(dict.fromkeys(caption_words + TRICKY_WORDS + ["SKY", "Flies", "İstanbul", "ΟΔΟΣ"]))
    json.dump({"nltk": nltk.__version__, "stems": {w: stemmer.stem(w) for w in stem_words}},
              open(OUT / "porter_expected.json", "w"), ensure_ascii=False, indent=0)
    print(f"{len(stem_words)} Porter stems")
    tmp.cleanup()


if __name__ == "__main__":
    main()
