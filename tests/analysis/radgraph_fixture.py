"""A tiny staged RadGraph folder, built offline in about a second: the layout ``analysis.eval.radgraph``
reads, with the package's own config format, vocabulary files and DyGIE model (random weights).

    ROOT/radgraph/{config.json, vocabulary/, weights.th}
    ROOT/<bert_name>/{config.json, vocab.txt, tokenizer_config.json, ...}   a tiny random BERT

As in the published model, config.json names the BERT by its Hub id (``bert_name``); the adapter finds
it staged under ROOT. The BERT folder holds no weights (weights.th has them all), as a real stage.
"""

from __future__ import annotations

import json
from pathlib import Path

# The published RadGraph config names this BERT (Hub id); staged under ROOT at the same relative path.
PUBMEDBERT = "microsoft/BiomedNLP-PubMedBERT-base-uncased-abstract-fulltext"
NER_LABELS = ("ANAT-DP", "OBS-DP", "OBS-U", "OBS-DA")  # RadGraph's entity labels
RELATION_LABELS = ("modify", "located_at", "suggestive_of")  # and its relations
# "a" and "b": the package finds the tokenizer's special tokens by encoding them
WORDS = (
    "a b no evidence of acute cardiopulmonary process abnormality moderate mild small large hiatal hernia "
    "pneumothorax chest tube effusion pleural left right lung lower upper lobe edema pulmonary heart "
    "enlarged cardiac silhouette consolidation nodule normal possible is the there . ,"
).split()
MAX_LENGTH = 64  # wordpieces per BERT window: long reports are folded into windows, as with 512 for real


def dygie_config(bert: str, *, hidden: int = 32, max_length: int = MAX_LENGTH) -> dict:
    """A config.json as the radgraph package reads it (dygiepp's template, small feed-forwards)."""
    indexer = {"type": "pretrained_transformer_mismatched", "model_name": bert, "max_length": max_length}
    return {
        "dataset_reader": {"type": "dygie", "max_span_width": 8, "token_indexers": {"bert": indexer}},
        "model": {
            "type": "dygie",
            "embedder": {"token_embedders": {"bert": dict(indexer)}},
            "feature_size": 20,
            "max_span_width": 8,
            "target_task": "relation",
            "feedforward_params": {"num_layers": 2, "hidden_dims": hidden, "dropout": 0.4},
            "initializer": {"regexes": [["_span_width_embedding.weight", {"type": "xavier_normal"}]]},
            "module_initializer": {
                "regexes": [
                    [".*weight", {"type": "xavier_normal"}],
                    [".*weight_matrix", {"type": "xavier_normal"}],
                ]
            },
            "loss_weights": {"ner": 1.0, "relation": 1.0, "coref": 0.0, "events": 0.0},
            "modules": {
                "coref": {"spans_per_word": 0.3, "max_antecedents": 100, "coref_prop": 0},
                "ner": {},
                "relation": {"spans_per_word": 0.5},
                "events": {
                    "trigger_spans_per_word": 0.3,
                    "argument_spans_per_word": 0.8,
                    "loss_weights": {"trigger": 1.0, "arguments": 1.0},
                },
            },
        },
    }


def write_bert(folder: Path) -> Path:
    """A tiny uncased BERT's config and tokenizer (hidden 32, 2 layers); no weights."""
    from transformers import BertConfig, BertTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    BertTokenizer(vocab=str(vocab), do_lower_case=True).save_pretrained(folder)
    BertConfig(
        vocab_size=5 + len(WORDS),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    ).save_pretrained(folder)
    return folder


def build_radgraph_folder(root: Path, *, seed: int = 0, bert_name: str = PUBMEDBERT) -> Path:
    """ROOT with radgraph/ and the BERT it names; weights.th is the state dict of a DyGIE model the
    package's classes build (random init from ``seed``). Returns ROOT (what radgraph_dir names)."""
    import torch

    from analysis.eval.radgraph import _import_radgraph

    _import_radgraph()  # the transformers-5 tokenizer shim the package needs to build its embedder
    from radgraph.allennlp.data import Vocabulary
    from radgraph.allennlp.modules import text_field_embedders, token_embedders
    from radgraph.dygie.models.dygie import DyGIE

    root = Path(root)
    bert = write_bert(root / bert_name)
    model_dir = root / "radgraph"
    model_dir.mkdir(parents=True)
    (model_dir / "config.json").write_text(json.dumps(dygie_config(bert_name), indent=2))

    vocab = Vocabulary(non_padded_namespaces=["*tags", "*labels"])
    vocab.add_tokens_to_namespace(["", *NER_LABELS], "radgraph__ner_labels")  # "" = no entity, index 0
    vocab.add_tokens_to_namespace(list(RELATION_LABELS), "radgraph__relation_labels")
    vocab.save_to_files(str(model_dir / "vocabulary"))
    (model_dir / "vocabulary" / ".lock").unlink(missing_ok=True)

    model_cfg = dygie_config(str(bert))["model"]
    for key in ("type", "embedder", "initializer", "module_initializer"):  # as RadGraph.__init__ does
        del model_cfg[key]
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        embedder = token_embedders.PretrainedTransformerMismatchedEmbedder(
            model_name=str(bert), max_length=MAX_LENGTH
        )
        model = DyGIE(
            vocab=vocab, embedder=text_field_embedders.BasicTextFieldEmbedder({"bert": embedder}), **model_cfg
        )
    torch.save(model.state_dict(), model_dir / "weights.th")
    return root
