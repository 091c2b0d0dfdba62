"""Semantic IDs from item embeddings: residual k-means or RQ-VAE, then a dedup level.

Residual k-means (RQ-KMeans): level 1 clusters the embeddings, each next level clusters the
residuals left by the previous levels' centroids. scikit-learn's KMeans (k-means++ init,
several restarts) does the clustering; the optional balanced assignment caps every code at
ceil(n / K) items (greedy by distance, then Lloyd updates), so no code swallows the catalog.

RQ-VAE (TIGER): an MLP encoder maps an embedding to a latent, L codebooks quantise it
residually, an MLP decoder reconstructs the embedding. Loss = reconstruction MSE +
sum over levels of ||sg[r] - e||² + beta ||r - sg[e]||² (codebook + commitment), with the
straight-through estimator. Codebooks start from k-means of the first latents; codes unused in
an epoch are reset to random residuals of the last batch (dead-code reset).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.cluster import KMeans
from tqdm.auto import trange

log = logging.getLogger(__name__)


@dataclass
class Quantization:
    """Codes (n, levels) and how well the levels reconstruct the input."""

    codes: np.ndarray
    # relative squared reconstruction error after each level: ||x - x̂_l||² / ||x||², mean over items
    residual_error: list[float]


def _kmeans(x: np.ndarray, k: int, seed: int, n_init: int, max_iter: int) -> tuple[np.ndarray, np.ndarray]:
    k_eff = min(k, len(np.unique(x, axis=0)))
    km = KMeans(n_clusters=k_eff, init="k-means++", n_init=n_init, max_iter=max_iter, random_state=seed).fit(x)
    return km.labels_.astype(np.int64), km.cluster_centers_.astype(x.dtype)


def balanced_assign(x: np.ndarray, centroids: np.ndarray, capacity: int) -> np.ndarray:
    """Assign each row to a centroid, nearest first, with at most `capacity` rows a centroid."""
    d = ((x[:, None, :] - centroids[None, :, :]) ** 2).sum(-1)
    order = np.argsort(d, axis=None, kind="stable")
    labels = np.full(len(x), -1, dtype=np.int64)
    load = np.zeros(len(centroids), dtype=np.int64)
    n_left = len(x)
    for flat in order:
        i, c = divmod(int(flat), len(centroids))
        if labels[i] >= 0 or load[c] >= capacity:
            continue
        labels[i], load[c] = c, load[c] + 1
        n_left -= 1
        if n_left == 0:
            break
    return labels


def _balanced_kmeans(x: np.ndarray, k: int, seed: int, n_init: int, max_iter: int, iters: int) -> tuple[np.ndarray, np.ndarray]:
    labels, centroids = _kmeans(x, k, seed, n_init, max_iter)
    capacity = int(np.ceil(len(x) / len(centroids)))
    for _ in range(iters):
        new = balanced_assign(x, centroids, capacity)
        centroids = np.stack([x[new == c].mean(0) if np.any(new == c) else centroids[c] for c in range(len(centroids))])
        if np.array_equal(new, labels):
            break
        labels = new
    return labels, centroids


def residual_kmeans(
    x: np.ndarray, levels: int, codebook_size: int, seed: int = 0, n_init: int = 3, max_iter: int = 300,
    balanced: bool = False, balanced_iters: int = 10,
) -> Quantization:
    x = np.asarray(x, dtype=np.float64)
    residual = x.copy()
    norm = np.maximum((x**2).sum(1), 1e-12)
    codes, errors = np.empty((len(x), levels), dtype=np.int64), []
    for level in range(levels):
        if balanced:
            labels, centroids = _balanced_kmeans(residual, codebook_size, seed + level, n_init, max_iter, balanced_iters)
        else:
            labels, centroids = _kmeans(residual, codebook_size, seed + level, n_init, max_iter)
        codes[:, level] = labels
        residual = residual - centroids[labels]
        errors.append(float(np.mean((residual**2).sum(1) / norm)))
        log.info("rq-kmeans level %d: %d codes used, relative residual %.4f", level + 1, len(np.unique(labels)), errors[-1])
    return Quantization(codes, errors)


# --------------------------------------------------------------------------- RQ-VAE
def _mlp(dims: list[int]) -> torch.nn.Sequential:
    layers: list[torch.nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
        layers.append(torch.nn.Linear(a, b))
        if i < len(dims) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


class RQVAE(torch.nn.Module):
    def __init__(self, input_dim: int, latent_dim: int, hidden_dims: list[int], levels: int, codebook_size: int):
        super().__init__()
        self.encoder = _mlp([input_dim, *hidden_dims, latent_dim])
        self.decoder = _mlp([latent_dim, *reversed(hidden_dims), input_dim])
        self.codebooks = torch.nn.ParameterList(
            [torch.nn.Parameter(torch.zeros(codebook_size, latent_dim)) for _ in range(levels)]
        )

    def quantize(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """Residual quantisation of latents: (quantised latents, codes (n, L), residual at each level)."""
        residual, quantized = z, torch.zeros_like(z)
        codes, residuals = [], []
        for book in self.codebooks:
            residuals.append(residual)
            idx = torch.cdist(residual, book).argmin(dim=1)
            chosen = book[idx]
            codes.append(idx)
            quantized = quantized + chosen
            residual = residual - chosen
        return quantized, torch.stack(codes, dim=1), residuals

    def loss(self, x: torch.Tensor, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encoder(x)
        residual, quantized, vq = z, torch.zeros_like(z), z.new_zeros(())
        codes = []
        for book in self.codebooks:
            idx = torch.cdist(residual.detach(), book).argmin(dim=1)
            chosen = book[idx]
            vq = vq + ((residual.detach() - chosen) ** 2).sum(-1).mean() + beta * ((residual - chosen.detach()) ** 2).sum(-1).mean()
            quantized = quantized + chosen
            residual = residual - chosen.detach()
            codes.append(idx)
        z_q = z + (quantized - z).detach()  # straight-through estimator
        recon = ((self.decoder(z_q) - x) ** 2).sum(-1).mean()
        return recon + vq, torch.stack(codes, dim=1)


def rq_vae(
    x: np.ndarray, levels: int, codebook_size: int, latent_dim: int = 32, hidden_dims: list[int] | None = None,
    epochs: int = 400, batch_size: int = 256, lr: float = 1e-3, beta: float = 0.25, dead_code_reset: bool = True,
    seed: int = 0, device: str = "cpu",
) -> Quantization:
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    data = torch.as_tensor(np.asarray(x), dtype=torch.float32)
    model = RQVAE(data.shape[1], latent_dim, list(hidden_dims or [256, 128]), levels, codebook_size)
    dev = torch.device(device)
    model, data = model.to(dev), data.to(dev)
    with torch.no_grad():  # k-means initialisation of the codebooks, level by level
        residual = model.encoder(data).cpu().numpy()
        for level, book in enumerate(model.codebooks):
            labels, centroids = _kmeans(residual, codebook_size, seed + level, 1, 100)
            init = torch.as_tensor(centroids, dtype=torch.float32)
            book[: len(init)] = init.to(dev)
            residual = residual - centroids[labels]
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    n = len(data)
    for _ in trange(epochs, desc="rq-vae", unit="epoch", leave=False, disable=None):
        used = torch.zeros(levels, codebook_size, dtype=torch.bool, device=dev)
        perm = torch.randperm(n, generator=gen).to(dev)
        for lo in range(0, n, batch_size):
            batch = data[perm[lo : lo + batch_size]]
            loss, codes = model.loss(batch, beta)
            opt.zero_grad()
            loss.backward()
            opt.step()
            used[torch.arange(levels, device=dev).repeat(len(codes)), codes.reshape(-1)] = True
        if dead_code_reset:
            with torch.no_grad():
                _, _, residuals = model.quantize(model.encoder(batch))
                for level, book in enumerate(model.codebooks):
                    dead = (~used[level]).nonzero().ravel()
                    if len(dead):
                        pick = torch.randint(len(batch), (len(dead),), generator=gen).to(dev)
                        book[dead] = residuals[level][pick]
    with torch.no_grad():
        z = model.encoder(data)
        _, codes, _ = model.quantize(z)
        norm = (data**2).sum(1).clamp(min=1e-12)
        errors, partial = [], torch.zeros_like(z)
        for level, book in enumerate(model.codebooks):
            partial = partial + book[codes[:, level]]
            errors.append(float((((model.decoder(partial) - data) ** 2).sum(1) / norm).mean()))
    log.info("rq-vae: %s codes used per level, relative reconstruction error %.4f",
             [len(torch.unique(codes[:, level])) for level in range(levels)], errors[-1])
    return Quantization(codes.cpu().numpy().astype(np.int64), errors)


# --------------------------------------------------------------------------- dedup
def add_dedup_level(codes: np.ndarray, dedup_size: int) -> np.ndarray:
    """Append a level that numbers the items sharing a code tuple 0, 1, 2, ... (in item order),
    so every item's tuple is unique."""
    _, inverse = np.unique(codes, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    order = np.argsort(inverse, kind="stable")
    group_start = np.r_[0, np.flatnonzero(np.diff(inverse[order])) + 1]
    rank_sorted = np.arange(len(order)) - np.repeat(group_start, np.diff(np.r_[group_start, len(order)]))
    dedup = np.empty(len(codes), dtype=np.int64)
    dedup[order] = rank_sorted
    if len(dedup) and dedup.max() >= dedup_size:
        raise ValueError(
            f"{int(dedup.max()) + 1} items share one semantic code tuple but the dedup level has only {dedup_size} codes; "
            "raise tokenize.dedup_size, tokenize.codebook_size or tokenize.levels"
        )
    return np.concatenate([codes, dedup[:, None]], axis=1)
