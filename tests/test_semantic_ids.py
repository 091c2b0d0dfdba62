"""Semantic-ID library: embeddings, quantisers, dedup level, vocabulary and trie."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from adagrpo_pipeline.datasets import SafetensorsDataset
from adagrpo_pipeline.recdata.prepare import drop_held_out
from adagrpo_pipeline.semantic_ids.embeddings import (
    cooccurrence_embeddings,
    encode_texts,
    mean_pool,
    resolve_model_dir,
)
from adagrpo_pipeline.semantic_ids.quantize import (
    add_dedup_level,
    balanced_assign,
    residual_kmeans,
    rq_vae,
)
from adagrpo_pipeline.semantic_ids.report import report_metrics, tokenizer_report
from adagrpo_pipeline.semantic_ids.trie import SidTrie
from adagrpo_pipeline.semantic_ids.vocab import SidVocab

from conftest import ML100K


def _clustered(n: int = 300, d: int = 16, k: int = 6, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, d)) * 3
    return (centers[rng.integers(k, size=n)] + rng.normal(size=(n, d))).astype(np.float32)


# --------------------------------------------------------------------------- quantisers
def test_residual_kmeans_is_seeded_and_each_level_reduces_error() -> None:
    x = _clustered()
    a, b = residual_kmeans(x, 3, 8, seed=1), residual_kmeans(x, 3, 8, seed=1)
    np.testing.assert_array_equal(a.codes, b.codes)
    assert a.residual_error == b.residual_error
    assert a.residual_error[0] > a.residual_error[1] > a.residual_error[2]
    assert not np.array_equal(a.codes, residual_kmeans(x, 3, 8, seed=2).codes)


def test_balanced_assignment_caps_every_code() -> None:
    x = np.r_[np.zeros((90, 2)), np.ones((10, 2))]  # one blob holds 90% of the items
    labels = balanced_assign(x, np.array([[0.0, 0.0], [1.0, 1.0], [0.5, 0.5], [0.2, 0.2]]), capacity=25)
    assert np.bincount(labels).max() == 25 and (labels >= 0).all()
    q = residual_kmeans(_clustered(), 1, 8, seed=0, balanced=True)
    assert np.bincount(q.codes[:, 0]).max() <= int(np.ceil(300 / 8))


def test_rq_vae_is_seeded_and_uses_its_codebooks() -> None:
    x = _clustered(n=200, d=12)
    kw = dict(levels=2, codebook_size=8, latent_dim=6, hidden_dims=[16], epochs=15, batch_size=64, seed=3)
    a, b = rq_vae(x, **kw), rq_vae(x, **kw)
    np.testing.assert_array_equal(a.codes, b.codes)
    assert a.codes.shape == (200, 2) and a.codes.max() < 8
    assert len(np.unique(a.codes[:, 0])) >= 5  # dead-code reset keeps the first level in use
    assert 0 < a.residual_error[-1] < 1.0


def test_dedup_level_makes_every_tuple_unique() -> None:
    codes = np.array([[0, 1], [0, 1], [2, 3], [0, 1], [2, 3], [4, 4]])
    full = add_dedup_level(codes, dedup_size=4)
    assert full[:, 2].tolist() == [0, 1, 0, 2, 1, 0]
    assert len(np.unique(full, axis=0)) == 6
    with pytest.raises(ValueError, match="3 items share one semantic code tuple but the dedup level has only 2 codes"):
        add_dedup_level(codes, dedup_size=2)


def test_report_counts_collisions_and_prefix_sizes() -> None:
    codes = np.array([[0, 1], [0, 1], [2, 3], [0, 2]])
    full = add_dedup_level(codes, 4)
    report = tokenizer_report(codes, full, [4, 4, 4], [0.5, 0.25])
    m = report_metrics(report)
    assert m["collision_rate"] == pytest.approx(0.25)  # 3 distinct tuples for 4 items
    assert m["items_in_collisions"] == pytest.approx(0.5)
    assert m["codebook_utilisation_l1"] == pytest.approx(0.5) and m["codes_used_l3"] == 2
    assert m["items_per_prefix_max_l1"] == 3 and m["items_per_prefix_mean_l2"] == pytest.approx(4 / 3)
    assert m["reconstruction_error_l2"] == 0.25


# --------------------------------------------------------------------------- vocabulary and trie
def test_vocab_layout_roundtrip() -> None:
    vocab = SidVocab(level_sizes=(4, 4, 3))
    assert vocab.offsets == (3, 7, 11) and vocab.size == 14
    tokens = vocab.encode(np.array([[0, 3, 2]]))
    assert tokens.tolist() == [[3, 10, 13]]
    assert vocab.decode(tokens).tolist() == [[0, 3, 2]]
    assert SidVocab.from_json(vocab.to_json()) == vocab
    with pytest.raises(ValueError, match="outside its level's range"):
        vocab.encode(np.array([[0, 4, 0]]))


@pytest.fixture
def trie_case():
    rng = np.random.default_rng(0)
    vocab = SidVocab(level_sizes=(5, 5, 8))
    codes = add_dedup_level(rng.integers(0, 5, size=(60, 2)), 8)
    tokens = vocab.encode(codes)
    item_ids = rng.permutation(60) + 100
    return vocab, tokens, item_ids, SidTrie.build(tokens, item_ids, vocab.size)


def test_every_item_path_is_valid_and_maps_back(trie_case) -> None:
    _, tokens, item_ids, trie = trie_case
    assert trie.lookup(torch.as_tensor(tokens)).tolist() == item_ids.tolist()
    assert trie.n_items == 60


def test_invalid_tuples_are_rejected(trie_case) -> None:
    vocab, tokens, _, trie = trie_case
    rng = np.random.default_rng(1)
    known = {tuple(t) for t in tokens.tolist()}
    candidates = vocab.encode(np.stack([rng.integers(0, s, size=500) for s in vocab.level_sizes], axis=1))
    invalid = np.array([c for c in candidates.tolist() if tuple(c) not in known])
    assert len(invalid) > 100
    assert (trie.lookup(torch.as_tensor(invalid)) == -1).all()
    # wrong-level tokens (a level-2 token first) and special tokens are rejected too
    swapped = tokens[:, [1, 0, 2]]
    assert (trie.lookup(torch.as_tensor(swapped)) == -1).all()
    assert (trie.lookup(torch.tensor([[0, 1, 2]])) == -1).all()


def test_allowed_mask_matches_brute_force(trie_case) -> None:
    vocab, tokens, _, trie = trie_case
    prefixes = [tokens[i, :d] for i in range(0, 60, 7) for d in range(3)]
    nodes = torch.stack([trie.walk(torch.as_tensor(p)[None, :])[0] if len(p) else torch.tensor(0) for p in prefixes])
    mask = trie.allowed_mask(nodes)
    for p, row in zip(prefixes, mask, strict=True):
        expected = {t[len(p)] for t in tokens.tolist() if list(t[: len(p)]) == list(p)}
        assert set(torch.nonzero(row).ravel().tolist()) == expected
    assert not trie.allowed_mask(torch.tensor([-1])).any()
    leaves = trie.walk(torch.as_tensor(tokens[:3]))
    assert not trie.allowed_mask(leaves).any()  # nothing follows a full item


def test_trie_roundtrips_through_safetensors_without_pickle(trie_case, tmp_path: Path) -> None:
    _, tokens, item_ids, trie = trie_case
    ds = SafetensorsDataset(filepath=str(tmp_path / "sid_trie.safetensors"))
    ds.save(trie.to_tensors())
    raw = (tmp_path / "sid_trie.safetensors").read_bytes()
    header_len = int.from_bytes(raw[:8], "little")
    assert raw[8:9] == b"{" and b"pickle" not in raw[: 8 + header_len]
    loaded = SidTrie.from_tensors(ds.load())
    assert loaded.lookup(torch.as_tensor(tokens)).tolist() == item_ids.tolist()
    with pytest.raises(ValueError, match="not a sid_trie"):
        SidTrie.from_tensors({"edge_keys": torch.zeros(1)})


# --------------------------------------------------------------------------- embeddings
def test_mean_pool_ignores_padding() -> None:
    hidden = torch.tensor([[[1.0, 1.0], [3.0, 5.0], [100.0, 100.0]]])
    assert mean_pool(hidden, torch.tensor([[1, 1, 0]])).tolist() == [[2.0, 3.0]]


def test_default_encoder_loads_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args, **kwargs):
        raise AssertionError("the encoder tried to open a network connection")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(socket.socket, "connect", no_network)
    texts = ["wireless noise cancelling headphones", "bluetooth over-ear headphones", "cast iron skillet for frying"]
    emb = encode_texts(texts, batch_size=2)
    assert emb.shape == (3, 384) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert emb[0] @ emb[1] > emb[0] @ emb[2] + 0.2
    np.testing.assert_allclose(encode_texts(texts[::-1], batch_size=3)[::-1], emb, atol=1e-5)


def test_unknown_encoder_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"tokenize.embedding.text.model = '.*nope': no model folder"):
        resolve_model_dir(str(tmp_path / "nope"))


def test_cooccurrence_embeddings_follow_co_consumption() -> None:
    # users 0-19 consume items {0,1,2}, users 20-39 consume {3,4,5}, in varying order
    rng = np.random.default_rng(0)
    rows = []
    for u in range(40):
        group = [0, 1, 2] if u < 20 else [3, 4, 5]
        for t, i in enumerate(rng.permutation(group)):
            rows.append((u, int(i), t))
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    emb = cooccurrence_embeddings(inter, n_items=6, dim=2, seed=0)
    sim = emb @ emb.T
    assert sim[0, 1] > 0.9 and sim[3, 4] > 0.9 and abs(sim[0, 3]) < 0.2
    assert len(drop_held_out(inter)) == 40  # 3 events a user, the last 2 held out


@pytest.mark.skipif(not (ML100K / "ml-100k.item").exists(), reason="MovieLens-100k not fetched (run scripts/dev.sh data)")
def test_items_sharing_a_genre_share_first_level_codes_more_often() -> None:
    from adagrpo_pipeline.recdata.readers import read_movielens_100k

    items = read_movielens_100k(ML100K).items
    codes = residual_kmeans(encode_texts(items["text"].tolist()), 3, 32, seed=0).codes[:, 0]
    genres = items["genres"].str.split(", ")
    names = sorted(set().union(*genres))
    g = np.array([[n in gs for n in names] for gs in genres])
    i, j = np.triu_indices(len(items), 1)
    same_code = codes[i] == codes[j]
    share = (g[i] & g[j]).any(axis=1)
    rate_shared, rate_random, rate_disjoint = same_code[share].mean(), same_code.mean(), same_code[~share].mean()
    # measured on this data: about 0.10, 0.04 and 0.009
    assert rate_shared > 2 * rate_random
    assert rate_disjoint < 0.5 * rate_random


def test_hybrid_embedding_weights_both_distances() -> None:
    from adagrpo_pipeline.semantic_ids.embeddings import combine_embeddings

    text = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    co = np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]], dtype=np.float32)
    out = combine_embeddings(text, co, text_weight=0.25)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-6)
    # squared distance = 0.25 * text distance (2) + 0.75 * co-occurrence distance (0)
    assert float(((out[0] - out[1]) ** 2).sum()) == pytest.approx(0.5, abs=1e-6)
    np.testing.assert_allclose(combine_embeddings(text, co, 1.0)[:, :2], text)
