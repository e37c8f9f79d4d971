"""A tiny CheXbert checkpoint in the published format, trained here (no download): what a site would
stage, at 1/3000 of the size. The model mirrors the authors' ``bert_labeler`` (BERT, dropout, 13 heads
of 4 classes and a No Finding head of 2 on the [CLS] state); it is saved through ``nn.DataParallel``
as theirs was, so keys carry the ``module.`` prefix, next to ``bert-base-uncased/{config.json,vocab.txt}``.
It is fitted until it labels its training sentences right, so a loader that tokenises, pools or orders
heads differently from the authors' code gets them wrong."""

from __future__ import annotations

from pathlib import Path

WORDS = (
    "no is are the there of and a left right small large mild possible pleural effusion cardiomegaly "
    "heart size normal lungs clear edema pneumothorax enlarged seen . ,"
).split()
CONDITIONS = (  # the checkpoint's head order (CheXbert src/constants.py), written out independently
    "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema", "Consolidation",
    "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other", "Fracture",
    "Support Devices", "No Finding",
)  # fmt: skip
BLANK, POS, NEG, UNC = 0, 1, 2, 3  # the authors' CLASS_MAPPING
SENTENCES = {  # text → {condition: class}; all others blank
    "Large left pleural effusion.": {"Pleural Effusion": POS},
    "No pleural effusion.": {"Pleural Effusion": NEG},
    "Possible pleural effusion.": {"Pleural Effusion": UNC},
    "Cardiomegaly.": {"Cardiomegaly": POS},
    "Heart size is normal.": {"Cardiomegaly": NEG},
    "The lungs are clear.": {"No Finding": POS},
    "Mild edema and cardiomegaly.": {"Edema": POS, "Cardiomegaly": POS},
    "Small right pneumothorax.": {"Pneumothorax": POS},
    "No pneumothorax.": {"Pneumothorax": NEG},
}


def build_chexbert(folder: Path, *, seed: int = 0) -> Path:
    import torch
    from torch import nn
    from transformers import BertConfig, BertModel, BertTokenizer

    torch.manual_seed(seed)
    bert_dir = folder / "bert-base-uncased"
    bert_dir.mkdir(parents=True)
    (bert_dir / "vocab.txt").write_text(
        "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n"
    )
    config = BertConfig(
        vocab_size=5 + len(WORDS),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
    )
    config.save_pretrained(bert_dir)
    tok = BertTokenizer(str(bert_dir / "vocab.txt"), do_lower_case=True)

    class BertLabeler(nn.Module):  # the authors' bert_labeler, at tiny size
        def __init__(self):
            super().__init__()
            self.bert = BertModel(config)
            self.dropout = nn.Dropout(0.1)
            h = self.bert.pooler.dense.in_features
            self.linear_heads = nn.ModuleList([nn.Linear(h, 4) for _ in range(13)] + [nn.Linear(h, 2)])

        def forward(self, ids, mask):
            cls = self.dropout(self.bert(ids, attention_mask=mask)[0][:, 0, :])
            return [head(cls) for head in self.linear_heads]

    texts = list(SENTENCES)
    # the authors' tokenize(): WordPiece tokens, then ids with [CLS] … [SEP]
    encoded = [tok.convert_tokens_to_ids(["[CLS]", *tok.tokenize(t), "[SEP]"]) for t in texts]
    width = max(map(len, encoded))
    ids = torch.tensor([e + [0] * (width - len(e)) for e in encoded])
    mask = (ids != 0).long()
    targets = torch.tensor([[SENTENCES[t].get(c, BLANK) for c in CONDITIONS] for t in texts])
    model = BertLabeler()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(600):
        model.train()
        out = model(ids, mask)
        loss = sum(nn.functional.cross_entropy(o, targets[:, j]) for j, o in enumerate(out))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 20 == 19:
            model.eval()
            with torch.no_grad():
                pred = torch.stack([o.argmax(1) for o in model(ids, mask)], dim=1)
            if torch.equal(pred, targets):
                break
    else:
        raise AssertionError("the tiny CheXbert did not fit its sentences")
    wrapped = nn.DataParallel(model)  # on CPU a plain wrapper; its state_dict has the module. prefix
    torch.save(
        {"epoch": step, "model_state_dict": wrapped.state_dict(), "optimizer_state_dict": opt.state_dict()},
        folder / "chexbert.pth",
    )
    return folder
