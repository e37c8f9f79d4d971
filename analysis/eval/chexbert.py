"""CheXbert labels from staged weights: the published checkpoint run as its authors run it, offline.

CheXbert (Smit et al. 2020) is BERT-base with 14 linear heads on the [CLS] state: 13 observations
with 4 classes (0 blank, 1 positive, 2 negative, 3 uncertain) and No Finding with 2 (0 blank,
1 positive). "CheXbert F1" in report-generation papers labels generated and reference reports with
it and scores the labels; here with the same counting as the CheXpert-rule F1 (uncertain counts as
positive), so the two families are comparable in everything but the labeler.

Staged folder (``eval.chexbert_dir``), nothing is ever downloaded::

    chexbert_dir/
      chexbert.pth          the published checkpoint, unchanged ({"model_state_dict": {"module.bert…",
                            "module.linear_heads.N…"}, …} as nn.DataParallel saved it)
      bert-base-uncased/    config.json + vocab.txt of the BERT it was trained from (an HF snapshot
                            of bert-base-uncased); or config.json + vocab.txt directly in chexbert_dir

Text goes in as the authors' ``label.py`` prepares it: stripped, newlines and runs of whitespace
folded to one space, lower-cased WordPiece, cut at 512 tokens keeping the final [SEP].
"""

from __future__ import annotations

import re
from pathlib import Path

from cxr.errors import UserError
from cxr.metrics.chexpert_rules import NEGATIVE, POSITIVE, UNCERTAIN

# The checkpoint's head order (CheXbert src/constants.py CONDITIONS)
CONDITIONS: tuple[str, ...] = (
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
    "No Finding",
)
# head class → our label; class 0 (blank) is "not mentioned" and leaves the finding out
CLASSES = {1: POSITIVE, 2: NEGATIVE, 3: UNCERTAIN}
MAX_TOKENS = 512


def _bert_folder(root: Path) -> Path:
    for cand in (root / "bert-base-uncased", root):
        if (cand / "config.json").is_file() and (cand / "vocab.txt").is_file():
            return cand
    raise UserError(
        f"chexbert_dir={root}: no BERT config.json + vocab.txt (in {root / 'bert-base-uncased'} or "
        f"{root}); stage bert-base-uncased's next to chexbert.pth"
    )


def _checkpoint(root: Path) -> Path:
    if (root / "chexbert.pth").is_file():
        return root / "chexbert.pth"
    found = sorted(root.glob("*.pth")) + sorted(root.glob("*.pt"))
    if len(found) != 1:
        raise UserError(
            f"chexbert_dir={root}: expected the published checkpoint chexbert.pth "
            f"(found {len(found)} .pth/.pt files)"
        )
    return found[0]


def check_folder(folder: str | Path) -> None:
    """A bad staged folder fails before any work, naming what is missing."""
    root = Path(folder)
    if not root.is_dir():
        raise UserError(f"chexbert_dir={folder} is not a folder")
    _checkpoint(root)
    _bert_folder(root)


def clean(text: str) -> str:
    return re.sub(r"\s+", " ", str(text or "").strip()).strip()


class CheXbert:
    """``CheXbert(folder).label(texts)`` → one {finding: POSITIVE/NEGATIVE/UNCERTAIN} dict per text."""

    def __init__(self, folder: str | Path, *, batch_size: int = 16, device: str = "cpu"):
        import torch
        from torch import nn
        from transformers import BertConfig, BertModel, BertTokenizer

        root = Path(folder)
        check_folder(root)
        bert_dir = _bert_folder(root)
        self.tokenizer = BertTokenizer.from_pretrained(str(bert_dir), local_files_only=True)
        config = BertConfig.from_pretrained(str(bert_dir), local_files_only=True)
        path = _checkpoint(root)
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise UserError(
                f"chexbert_dir: {path.name} cannot be read as a torch checkpoint ({type(e).__name__})"
            ) from None
        state = ckpt.get("model_state_dict", ckpt) if isinstance(ckpt, dict) else None
        if not isinstance(state, dict):
            raise UserError(f"chexbert_dir: {path.name} holds no model_state_dict")
        state = {k.removeprefix("module."): v for k, v in state.items()}
        heads = sorted({int(k.split(".")[1]) for k in state if k.startswith("linear_heads.")})
        if heads != list(range(len(CONDITIONS))):
            raise UserError(
                f"chexbert_dir: {path.name} has linear heads {heads}, expected 0..{len(CONDITIONS) - 1} "
                "(is it a CheXbert checkpoint?)"
            )

        model = nn.Module()
        model.bert = BertModel(config)
        hidden = config.hidden_size
        model.linear_heads = nn.ModuleList(
            [nn.Linear(hidden, 4) for _ in range(len(CONDITIONS) - 1)] + [nn.Linear(hidden, 2)]
        )
        # buffers older transformers saved (position_ids) are rebuilt by BertModel itself
        state = {k: v for k, v in state.items() if not k.endswith("position_ids")}
        try:
            missing, unexpected = model.load_state_dict(state, strict=False)
        except RuntimeError as e:  # shape mismatch: the config is not the checkpoint's BERT
            first = str(e).splitlines()[1:2]
            raise UserError(
                f"chexbert_dir: {path.name} does not fit {bert_dir / 'config.json'}: {first}"
            ) from None
        missing = [k for k in missing if not k.endswith(("position_ids", "token_type_ids"))]
        if missing or unexpected:
            raise UserError(
                f"chexbert_dir: {path.name} does not match a BERT labeler: missing {missing[:3]}, "
                f"unexpected {unexpected[:3]}"
            )
        self.model = model.eval().to(device)
        self.device, self.batch_size = device, batch_size

    def logits(self, texts: list[str]):
        """Per head, (len(texts), classes) logits."""
        import torch

        outs = [[] for _ in CONDITIONS]
        with torch.inference_mode():
            for i in range(0, len(texts), self.batch_size):
                enc = self.tokenizer(
                    [clean(t) for t in texts[i : i + self.batch_size]],
                    truncation=True,
                    max_length=MAX_TOKENS,
                    padding=True,
                    return_tensors="pt",
                    return_token_type_ids=False,
                ).to(self.device)
                cls = self.model.bert(enc["input_ids"], attention_mask=enc["attention_mask"])[0][:, 0, :]
                for j, head in enumerate(self.model.linear_heads):
                    outs[j].append(head(cls))
        return [torch.cat(o).float().cpu() if o else torch.empty(0, 4) for o in outs]

    def label(self, texts: list[str]) -> list[dict[str, int]]:
        classes = [h.argmax(dim=1).tolist() for h in self.logits(list(texts))]
        return [
            {f: CLASSES[c[k]] for f, c in zip(CONDITIONS, classes, strict=True) if c[k] in CLASSES}
            for k in range(len(texts))
        ]
