"""One pass over a corpus: per-feature top-activating contexts (a bounded top-N kept per feature, merged
batch by batch), firing frequency, activation histogram, and every token's sparse code for later lookups."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from sae.capture import capture, inlier_mask
from sae.model import TopKSAE


@dataclass
class FeatureStats:
    windows: torch.Tensor  # (n_windows, S) token ids
    code_values: torch.Tensor  # (n_windows·S, k) float16: every token's top-k activations
    code_indices: torch.Tensor  # (n_windows·S, k) int32
    top_values: torch.Tensor  # (n_features, N) the N largest per-window peak activations, descending
    top_windows: torch.Tensor  # (n_features, N) their windows
    top_peaks: torch.Tensor  # (n_features, N) the peak's position in the window
    counts: torch.Tensor  # (n_features,) tokens where the feature fired
    max_act: torch.Tensor  # (n_features,)

    @property
    def n_tokens(self) -> int:
        return self.code_values.shape[0]

    @property
    def frequency(self) -> torch.Tensor:
        return self.counts.float() / self.n_tokens

    def token_acts(self, feature: int, window: int) -> torch.Tensor:
        """(S,) this feature's activation at each token of a window."""
        S = self.windows.shape[1]
        vals = self.code_values[window * S : (window + 1) * S].float()
        idx = self.code_indices[window * S : (window + 1) * S]
        return (vals * (idx == feature)).sum(1)

    def histogram(self, bins: int = 20) -> torch.Tensor:
        """(n_features, bins) counts of non-zero activations in equal bins from 0 to each feature's max."""
        n = self.counts.shape[0]
        vals, idx = self.code_values.float().flatten(), self.code_indices.flatten().long()
        keep = vals > 0
        vals, idx = vals[keep], idx[keep]
        b = (vals / self.max_act[idx].clamp_min(1e-12) * bins).long().clamp(max=bins - 1)
        return torch.bincount(idx * bins + b, minlength=n * bins).view(n, bins)

    def quantile_samples(self, feature: int, bins: int = 4, per_bin: int = 2, seed: int = 0
                         ) -> list[list[tuple[float, int, int]]]:
        """Neuronpedia's activation-quantile examples: the tokens where `feature` fired, split into `bins`
        equal-count bins by activation (lowest first); `per_bin` random ones from each as (act, window, pos)."""
        if not hasattr(self, "_by_feature"):  # one sort of every non-zero code entry, shared by all features
            vals, idx = self.code_values.float().flatten(), self.code_indices.flatten().long()
            keep = (vals > 0).nonzero().flatten()
            order = idx[keep].argsort(stable=True)
            self._by_feature = (keep[order], torch.bincount(idx[keep], minlength=self.counts.shape[0]).cumsum(0))
        entries, ends = self._by_feature
        lo = int(ends[feature - 1]) if feature > 0 else 0
        mine = entries[lo : int(ends[feature])]
        if len(mine) == 0:
            return [[] for _ in range(bins)]
        k = self.code_values.shape[1]
        acts = self.code_values.float().flatten()[mine]
        mine = mine[acts.argsort()]
        g = torch.Generator().manual_seed(seed * 1_000_003 + feature)
        S, out = self.windows.shape[1], []
        for part in torch.tensor_split(mine, bins):
            pick = part[torch.randperm(len(part), generator=g)[:per_bin]]
            tok = pick // k
            out.append([(float(self.code_values.flatten()[e]), int(t // S), int(t % S)) for e, t in zip(pick, tok)])
        return out

    def peak_tokens(self, feature: int, top: int = 5) -> list[tuple[int, int]]:
        """TopAct's explanation: the most frequent token ids at the peaks of the top contexts."""
        ok = self.top_values[feature] > 0
        ids = self.windows[self.top_windows[feature][ok], self.top_peaks[feature][ok]]
        return Counter(ids.tolist()).most_common(top)


def _merge_top(best: tuple, cand: tuple, n_keep: int) -> tuple:
    vals = torch.cat([best[0], cand[0]], 1)
    top = vals.topk(n_keep, dim=1)
    return top.values, torch.cat([best[1], cand[1]], 1).gather(1, top.indices), torch.cat(
        [best[2], cand[2]], 1).gather(1, top.indices)


@torch.no_grad()
def collect_stats(model, sae: TopKSAE, windows: torch.Tensor, top_n: int = 10, batch_size: int = 16,
                  outlier_factor: float | None = 10.0) -> FeatureStats:
    """Stream `windows` (n, S) through the LM (early exit at the SAE's hook) and the SAE once. Outlier
    tokens (norm > outlier_factor × median, as excluded from training) get no activations."""
    if len(windows) == 0:
        raise ValueError("No windows to collect feature statistics from")
    n_feat, (n_win, S), k = sae.d_sae, windows.shape, sae.width
    hook = sae.cfg.hook_point
    device = next(model.parameters()).device
    best = (torch.zeros(n_feat, top_n), torch.zeros(n_feat, top_n, dtype=torch.long),
            torch.zeros(n_feat, top_n, dtype=torch.long))
    code_v = torch.zeros(n_win * S, k, dtype=torch.float16)
    code_i = torch.zeros(n_win * S, k, dtype=torch.int32)
    for start in tqdm(range(0, n_win, batch_size), desc="feature statistics", unit="batch", mininterval=2):
        ids = windows[start : start + batch_size].to(device)
        B = len(ids)
        x = capture(model, ids, None, [hook]).acts[hook]  # (B·S, d), row-major over (window, pos)
        enc = sae.encode(x)
        inliers = inlier_mask(x.view(B, S, -1), outlier_factor).flatten()  # per window, as in training
        vals, idx = (enc.values * inliers[:, None]).float().cpu(), enc.indices.cpu()
        code_v[start * S : (start + B) * S], code_i[start * S : (start + B) * S] = vals.half(), idx.int()
        # Per (feature, window) peak: the max over the window's tokens, and where it is.
        key = (idx * B + torch.arange(B * S).div(S, rounding_mode="floor")[:, None]).flatten()
        flat = vals.flatten()
        peak = torch.zeros(n_feat * B).scatter_reduce_(0, key, flat, "amax")
        pos = torch.arange(B * S).remainder(S)[:, None].expand_as(idx).flatten()
        at_peak = (flat == peak[key]) & (flat > 0)
        where = torch.zeros(n_feat * B, dtype=torch.long).scatter_(0, key[at_peak], pos[at_peak])
        cand = (peak.view(n_feat, B), torch.arange(start, start + B).expand(n_feat, B), where.view(n_feat, B))
        best = _merge_top(best, cand, top_n)
    fired = code_v.float() > 0
    counts = torch.bincount(code_i.long()[fired], minlength=n_feat)
    max_act = torch.zeros(n_feat).scatter_reduce_(0, code_i.long().flatten(), code_v.float().flatten(), "amax")
    return FeatureStats(windows.cpu(), code_v, code_i, *best, counts, max_act)
