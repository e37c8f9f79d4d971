"""Report-generation metrics as papers quote them: BLEU-1..4, ROUGE-L, CIDEr(-D) and METEOR from
pycocoevalcap (the COCO caption evaluation code), after its PTB tokenisation.

Why not ``COCOEvalCap`` itself: it wants COCO json objects and tokenises again on every call. Here the
texts are tokenised once, each scorer's per-case work is done once (BLEU n-gram counts, CIDEr
n-gram vectors, METEOR alignment statistics) and only the corpus-level aggregation is redone per
bootstrap resample, with the scorers' own code. The full-set numbers equal ``compute_score``'s.

CIDEr is the exception: its n-gram weights (document frequencies) come from the whole evaluated set
and stay fixed; slices and resamples average the per-case scores. Recomputing the weights per
resample costs ~0.4 s at 500 cases (minutes per slice), and a slice's own weights would make slices
incomparable (one case gives log(1) = 0, CIDEr 0).

Java (PTB tokenizer, METEOR jar): without it, METEOR is skipped with a reason and texts are split by
a simple regex tokenizer instead (recorded as ``tokenizer: simple`` in the summary; BLEU/CIDEr then
differ slightly from papers' numbers).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from analysis.eval.bootstrap import Stat, mean_stat

BLEU_NAMES = ("bleu_1", "bleu_2", "bleu_3", "bleu_4")
_WORDS = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def java() -> str | None:
    return shutil.which("java")


def ptb_tokenize(texts: list[str]) -> list[str]:
    """pycocoevalcap's PTBTokenizer, run on a temp file outside site-packages (the original writes
    beside its jar, which a shared read-only install does not allow); punctuation removed as there."""
    from pycocoevalcap.tokenizer import ptbtokenizer as ptb

    jar = Path(ptb.__file__).with_name(ptb.STANFORD_CORENLP_3_4_1_JAR)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "sentences.txt")
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(" ".join(t.split()) for t in texts))
        cmd = [java() or "java", "-cp", str(jar), "edu.stanford.nlp.process.PTBTokenizer"]
        out = subprocess.run(
            [*cmd, "-preserveLines", "-lowerCase", path], capture_output=True, check=True, timeout=600
        ).stdout.decode("utf-8")
    lines = out.split("\n")[: len(texts)]
    lines += [""] * (len(texts) - len(lines))  # trailing empty texts yield no line
    return [
        " ".join(w for w in line.rstrip().split(" ") if w and w not in ptb.PUNCTUATIONS) for line in lines
    ]


def simple_tokenize(texts: list[str]) -> list[str]:
    return [" ".join(_WORDS.findall(t.lower())) for t in texts]


class _Meteor:
    """The METEOR 1.5 jar through pycocoevalcap's wrapper: alignment statistics per case once
    (``SCORE`` lines), then one ``EVAL`` line per resample aggregates them as the jar does."""

    def __init__(self, hyps: list[str], refs: list[list[str]]):
        from pycocoevalcap.meteor.meteor import Meteor

        self._m = Meteor()
        # "|||" separates fields in the jar's protocol; the wrapper strips it from hypotheses only
        refs = [[r.replace("|||", " ") for r in rs] for rs in refs]
        with self._m.lock:
            self.stats = [self._m._stat(h, r) for h, r in zip(hyps, refs, strict=True)]

    def score(self, idx: np.ndarray) -> float:
        p = self._m.meteor_p
        with self._m.lock:
            p.stdin.write(("EVAL ||| " + " ||| ".join(self.stats[i] for i in idx) + "\n").encode())
            p.stdin.flush()
            for _ in range(len(idx)):
                p.stdout.readline()
            return float(p.stdout.readline().strip())

    def close(self) -> None:
        self._m.__del__()
        self._m.__del__ = lambda: None


class TextMetrics:
    """Paired texts → Stats for BLEU-1..4, ROUGE-L, CIDEr, METEOR; ``skipped`` says what could not run."""

    def __init__(self, hyps: list[str], refs: list[list[str]], *, use_java: bool | None = None):
        from pycocoevalcap.bleu.bleu_scorer import BleuScorer
        from pycocoevalcap.cider.cider_scorer import CiderScorer
        from pycocoevalcap.rouge.rouge import Rouge

        self.skipped: dict[str, str] = {}
        use_java = java() is not None if use_java is None else use_java
        flat = list(hyps) + [r for rs in refs for r in rs]
        tok = ptb_tokenize(flat) if use_java and flat else simple_tokenize(flat)
        self.tokenizer = "ptb" if use_java else "simple"
        self.hyps, pos, self.refs = tok[: len(hyps)], len(hyps), []
        for rs in refs:
            self.refs.append(tok[pos : pos + len(rs)])
            pos += len(rs)
        self._bleu = BleuScorer(n=4)
        cider = CiderScorer(n=4, sigma=6.0)
        for h, r in zip(self.hyps, self.refs, strict=True):
            self._bleu += (h, r)
            cider += (h, r)
        # per-case CIDEr-D with the whole set's document frequencies (see the module docstring)
        self.cider = (
            cider.compute_score()[1]
            if self.hyps and any(any(r) for r in self.refs)
            else np.zeros(len(self.hyps))
        )
        rouge = Rouge()
        self.rouge = np.array([rouge.calc_score([h], r) for h, r in zip(self.hyps, self.refs, strict=True)])
        self._meteor = None
        if not use_java:
            self.skipped["meteor"] = "needs Java (install default-jre-headless: tools/system-deps)"
        elif self.hyps:
            self._meteor = _Meteor(self.hyps, self.refs)

    def bleu(self, idx: np.ndarray) -> list[float]:
        from pycocoevalcap.bleu.bleu_scorer import BleuScorer

        s = BleuScorer(n=4)
        s.crefs, s.ctest = [self._bleu.crefs[i] for i in idx], [self._bleu.ctest[i] for i in idx]
        return list(s.compute_score(option="closest", verbose=0)[0])

    def stats(self) -> list[Stat]:
        out = [
            Stat(BLEU_NAMES, self.bleu, corpus=True),
            mean_stat("rouge_l", self.rouge),
            mean_stat("cider", self.cider),
        ]
        if self._meteor is not None:
            out.append(Stat(["meteor"], lambda idx: [self._meteor.score(idx)], corpus=True))
        return out

    def close(self) -> None:
        if self._meteor is not None:
            self._meteor.close()
            self._meteor = None
