"""RadGraph F1 of generated reports, from locally staged RadGraph weights (never downloaded).

Scored with the ``radgraph`` package (Stanford-AIMI, J.-B. Delbrouck; pinned 0.1.18): its RadGraph
annotator (DyGIE++ over a BERT) and its reward functions. Per case, the package gives three F1s of
the hypothesis' entities against the reference's (``radgraph.rewards``):

    radgraph_f1           "partial"  RG_ER: (tokens, label, has a relation) — the usual "RadGraph F1"
    radgraph_f1_simple    "simple"   RG_E: (tokens, label)
    radgraph_f1_complete  "complete" RG_bar_ER: (tokens, label) and every (relation, target tokens)

A value over cases is the mean of the per-case F1s, as the package's ``F1RadGraph`` reports it; a
case whose prediction or reference is empty (or only whitespace), or in which either side has no
entity, scores 0, as in the package. Every text is annotated once (predictions and references that
repeat are not annotated again), then a bootstrap resample only re-averages the per-case values.

Staged folder (``radgraph_dir``)::

    radgraph_dir/
      radgraph/                  the package's radgraph.tar.gz, unpacked as it is (tar xzf … -C radgraph/)
        config.json              AllenNLP/DyGIE config; names the BERT in two places (below)
        vocabulary/              non_padded_namespaces.txt, radgraph__ner_labels.txt, radgraph__relation_labels.txt
        weights.th               the whole model's state dict, BERT included
      microsoft/BiomedNLP-PubMedBERT-base-uncased-abstract-fulltext/
        config.json  vocab.txt  (tokenizer_config.json)     the BERT named by config.json

The BERT is named by ``dataset_reader.token_indexers.bert.model_name`` (its tokenizer) and
``model.embedder.token_embedders.bert.model_name`` (its architecture). The published config names a
Hub id; stage that model's config and tokenizer files under ``radgraph_dir`` at the same relative
path (or write an absolute local path into config.json). Its weights are not needed: the package
builds the BERT from its config and loads every weight from weights.th. The staged folder is only
read: the config is rewritten (the names become local paths) into a temporary copy, which also holds
a copy of vocabulary/ (the package takes a lock file inside it) and a link to weights.th.

Offline: the names are resolved to local folders before anything is loaded, and loading runs with
HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE set (and the Hub client's offline switch on), so a missing file
is a UserError here, never a download. ``radgraph_dir/radgraph-xl/`` (RadGraph-XL) is read the same
way with ``model_type="radgraph-xl"``; its metrics are then named ``radgraph_xl_f1*``.

transformers 5: radgraph 0.1.18 calls two tokenizer methods that transformers 5 removed
(``encode_plus`` in radgraph/allennlp/data/tokenizers/pretrained_transformer_tokenizer.py lines 123,
182, 232, 345; ``build_inputs_with_special_tokens`` in
radgraph/allennlp/data/token_indexers/pretrained_transformer_indexer.py line 171). ``_patch_tokenizers``
gives the tokenizers the package creates (all through its ``cached_transformers.get_tokenizer``) those
two methods, where missing: ``encode_plus`` is the tokenizer's ``__call__`` (same arguments, same
output for one text or one pair), and ``build_inputs_with_special_tokens(ids)`` wraps ids in the
special tokens the tokenizer itself adds around one text. Nothing else in transformers is changed.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from analysis.eval.bootstrap import Stat
from cxr.errors import UserError

MODEL_TYPES = ("radgraph", "radgraph-xl")
# the package's reward levels, in the order of the columns of RadGraphF1.scores
LEVELS = ("partial", "simple", "complete")
BERT_KEYS = (
    ("dataset_reader", "token_indexers", "bert", "model_name"),
    ("model", "embedder", "token_embedders", "bert", "model_name"),
)
# read by the package (radgraph/radgraph.py: RadGraph.__init__), which fails obscurely without them
REQUIRED_KEYS = (
    ("dataset_reader", "max_span_width"),
    ("dataset_reader", "token_indexers", "bert", "max_length"),
    ("model", "embedder", "token_embedders", "bert", "max_length"),
    *(("model", k) for k in ("type", "initializer", "module_initializer", "modules", "feature_size")),
    *(("model", k) for k in ("max_span_width", "target_task", "feedforward_params", "loss_weights")),
)
TOKENIZER_FILES = ("vocab.txt", "tokenizer.json")


def metric_names(model_type: str = "radgraph") -> list[str]:
    """Names of the three values, in LEVELS order: radgraph_f1, radgraph_f1_simple, radgraph_f1_complete."""
    base = model_type.replace("-", "_") + "_f1"
    return [base if level == "partial" else f"{base}_{level}" for level in LEVELS]


@dataclass(frozen=True)
class Staged:
    """A checked staged folder: the model folder, its config and the local folder of its BERT."""

    model_type: str
    model_dir: Path
    config: dict
    bert_dirs: tuple[Path, ...]  # one per BERT_KEYS entry


def _key(path: tuple[str, ...]) -> str:
    return ".".join(path)


def _lookup(config: dict, path: tuple[str, ...], where: Path):
    node = config
    for part in path:
        if not isinstance(node, dict) or part not in node:
            raise UserError(
                f"{where}: no key {_key(path)} (not a RadGraph config as the radgraph package writes)"
            )
        node = node[part]
    return node


def _resolve_bert(name: str, folder: Path, staged: Path, where: Path, key: str) -> Path:
    candidates = [Path(name)] if Path(name).is_absolute() else [folder / name, staged / name]
    for c in candidates:
        if c.is_dir():
            missing = [] if (c / "config.json").is_file() else ["config.json"]
            if not any((c / f).is_file() for f in TOKENIZER_FILES):
                missing.append(" or ".join(TOKENIZER_FILES))
            if missing:
                raise UserError(
                    f"{c}: the BERT that {where} names ({key}) has no {', '.join(missing)} "
                    "(stage its config and tokenizer files; its weights are not needed)"
                )
            return c.resolve()
    raise UserError(
        f"{where} names the BERT {name!r} ({key}), which is not staged: put its config.json and "
        f"vocab.txt (tokenizer files; weights not needed) in {candidates[0]} — nothing is downloaded"
    )


def read_folder(folder: str | os.PathLike, model_type: str = "radgraph") -> Staged:
    """Check a staged folder without loading anything; UserError naming the first missing piece."""
    if model_type not in MODEL_TYPES:
        raise UserError(f"RadGraph model_type {model_type!r}: known {', '.join(MODEL_TYPES)}")
    root = Path(folder)
    if not str(folder) or not root.is_dir():
        raise UserError(f"radgraph_dir={folder} is not a folder")
    staged = root / model_type
    if not staged.is_dir():
        found = [t for t in MODEL_TYPES if (root / t).is_dir()]
        hint = f" (found {', '.join(t + '/' for t in found)})" if found else ""
        raise UserError(
            f"radgraph_dir={folder}: no {model_type}/ folder{hint}; unpack the radgraph package's "
            f"{model_type}.tar.gz into {staged}"
        )
    for name in ("config.json", "weights.th", "vocabulary"):
        if not (staged / name).exists():
            raise UserError(f"radgraph_dir={folder}: {staged / name} is missing")
    vocab = staged / "vocabulary"
    for name in (
        "non_padded_namespaces.txt",
        f"{model_type}__ner_labels.txt",
        f"{model_type}__relation_labels.txt",
    ):
        if not (vocab / name).is_file():
            raise UserError(f"radgraph_dir={folder}: {vocab / name} is missing")
    where = staged / "config.json"
    try:
        config = json.loads(where.read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"{where}: not readable JSON ({e})") from None
    for path in REQUIRED_KEYS:
        _lookup(config, path, where)
    bert_dirs = []
    for path in BERT_KEYS:
        name = _lookup(config, path, where)
        if not isinstance(name, str) or not name:
            raise UserError(f"{where}: {_key(path)} is not a model name or folder")
        bert_dirs.append(_resolve_bert(name, root, staged, where, _key(path)))
    return Staged(model_type, staged, config, tuple(bert_dirs))


def check_folder(folder: str, model_type: str = "radgraph") -> None:
    """Raise UserError early (before any scoring) if ``folder`` is not a complete staged RadGraph."""
    read_folder(folder, model_type)


@contextlib.contextmanager
def _offline() -> Iterator[None]:
    """HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE for the duration, also in the already-imported Hub client
    (it reads the variables once, at import)."""
    saved = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    try:
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover - transformers depends on it
        constants = None
    hub_saved = getattr(constants, "HF_HUB_OFFLINE", None)
    if constants is not None:
        constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        if constants is not None:
            constants.HF_HUB_OFFLINE = hub_saved
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The package prints ("Using device: cpu") and warns on one-word reports; keep eval's output clean."""
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*single token or no tokens.*")
        yield


def _import_radgraph():
    # radgraph/radgraph.py sets a global warnings filter at import; keep the caller's filters.
    with warnings.catch_warnings():
        import radgraph  # noqa: F401
        from radgraph.allennlp.common import cached_transformers

    _patch_tokenizers(cached_transformers)
    return cached_transformers


def _special_token_builder(tok) -> Callable:
    plain = tok("a", add_special_tokens=False)["input_ids"]
    full = tok("a", add_special_tokens=True)["input_ids"]
    n = len(plain)
    at = next((i for i in range(len(full) - n + 1) if full[i : i + n] == plain), None)
    if not n or at is None:
        raise RuntimeError(f"cannot tell the special tokens of {type(tok).__name__} around one text")
    before, after = list(full[:at]), list(full[at + n :])

    def build_inputs_with_special_tokens(token_ids_0, token_ids_1=None):
        if token_ids_1 is not None:  # the package only builds single sequences
            raise NotImplementedError("pairs of sequences")
        return before + list(token_ids_0) + after

    return build_inputs_with_special_tokens


def _patch_tokenizers(cached_transformers) -> None:
    """transformers 5 removed ``encode_plus`` and (fast tokenizers) ``build_inputs_with_special_tokens``,
    which radgraph 0.1.18 calls; give them back to the tokenizers the package makes. Idempotent."""
    if getattr(cached_transformers.get_tokenizer, "_cxr_patched", False):
        return
    original = cached_transformers.get_tokenizer

    def get_tokenizer(model_name: str, **kwargs):
        tok = original(model_name, **kwargs)
        if not hasattr(tok, "encode_plus"):
            tok.encode_plus = tok.__call__
        if not hasattr(tok, "build_inputs_with_special_tokens"):
            tok.build_inputs_with_special_tokens = _special_token_builder(tok)
        return tok

    get_tokenizer._cxr_patched = True
    cached_transformers.get_tokenizer = get_tokenizer


class RadGraphF1:
    """The package's RadGraph annotator, loaded once from a staged folder (see the module docstring)."""

    def __init__(self, folder: str | os.PathLike, model_type: str = "radgraph", cuda: int | None = None):
        """``cuda``: the package's device argument (None: GPU 0 if there is one, -1: CPU)."""
        staged = read_folder(folder, model_type)
        self.model_type = model_type
        self.names = metric_names(model_type)
        cached_transformers = _import_radgraph()
        from radgraph import RadGraph

        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="cxr-radgraph-") as tmp:
            model_dir = Path(tmp) / model_type
            model_dir.mkdir()
            config = json.loads(json.dumps(staged.config))
            for path, bert in zip(BERT_KEYS, staged.bert_dirs, strict=True):
                node = config
                for part in path[:-1]:
                    node = node[part]
                node[path[-1]] = str(bert)
            (model_dir / "config.json").write_text(json.dumps(config, indent=2))
            shutil.copytree(
                staged.model_dir / "vocabulary", model_dir / "vocabulary", ignore=shutil.ignore_patterns(".*")
            )
            try:
                os.symlink((staged.model_dir / "weights.th").resolve(), model_dir / "weights.th")
            except OSError:
                shutil.copyfile(staged.model_dir / "weights.th", model_dir / "weights.th")
            with _offline(), _quiet():
                self.model = RadGraph(model_type=model_type, model_cache_dir=tmp, cuda=cuda)
        # the package keeps a randomly initialised copy of each BERT it built; it is never used again
        cached_transformers._model_cache.clear()
        self.load_seconds = time.perf_counter() - t0

    def annotate(self, texts: list[str]) -> list[dict]:
        """The package's annotation of each text ({"text", "entities": {...}, ...}), each distinct
        text annotated once; empty and whitespace-only texts get no entities (the package fails on
        whitespace-only text)."""
        todo = sorted({t for t in texts if t.strip()})
        found: dict[str, dict] = {}
        if todo:
            with _quiet(), _torch_no_grad():
                out = self.model(todo)
            for i, t in enumerate(todo):
                if str(i) not in out:  # the package printed a traceback and skipped it
                    raise RuntimeError(f"RadGraph could not annotate text {t[:80]!r}")
                found[t] = out[str(i)]
        return [found.get(t, {"text": t, "entities": {}}) for t in texts]

    def scores(self, preds: list[str], refs: list[str]) -> np.ndarray:
        """(cases, 3) per-case F1s, columns in LEVELS order (partial, simple, complete); as the package's
        ``F1RadGraph(reward_level="all")`` computes them."""
        from radgraph.rewards import compute_reward

        if len(preds) != len(refs):
            raise ValueError(f"{len(preds)} predictions but {len(refs)} references")
        preds = [p if isinstance(p, str) else "" for p in preds]
        refs = [r if isinstance(r, str) else "" for r in refs]
        ann = dict(zip(preds + refs, self.annotate(preds + refs), strict=True))
        out = np.zeros((len(preds), len(LEVELS)), dtype=float)
        order = [("simple", "partial", "complete").index(level) for level in LEVELS]
        for k, (p, r) in enumerate(zip(preds, refs, strict=True)):
            if p.strip() and r.strip():  # the package: an empty side scores 0
                out[k] = np.asarray(compute_reward(ann[p], ann[r], "all"), dtype=float)[order]
        return out


@contextlib.contextmanager
def _torch_no_grad() -> Iterator[None]:
    import torch

    with torch.no_grad():
        yield


def radgraph_stats(
    preds: list[str], refs: list[str], folder: str, model_type: str = "radgraph", log=None
) -> list[Stat]:
    """One Stat: mean per-case RadGraph F1 (partial, simple, complete; names from ``metric_names``)
    over the resampled cases. Loads the staged model once and annotates every distinct text once."""
    scorer = RadGraphF1(folder, model_type)
    t0 = time.perf_counter()
    values = scorer.scores(preds, refs)
    if log is not None:
        log(
            f"radgraph: {len(preds)} cases in {time.perf_counter() - t0:.1f} s "
            f"(model loaded in {scorer.load_seconds:.1f} s)"
        )

    def fn(idx: np.ndarray) -> list[float]:
        if not len(idx):
            return [float("nan")] * len(LEVELS)
        return list(values[idx].mean(axis=0))

    return [Stat(scorer.names, fn)]
