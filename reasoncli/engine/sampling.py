"""Per-branch sampling settings and the llama.cpp sampler chain built from them."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reasoncli.models.schema import Sampling as CatalogSampling


@dataclass(frozen=True)
class Sampling:
    """How one branch picks tokens. Temperature 0 means greedy."""

    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    repeat_penalty: float = 1.0
    seed: int = 0

    @classmethod
    def from_catalog(cls, s: CatalogSampling) -> Sampling:
        """A model's default sampling as its models.yaml entry gives it."""
        return cls(s.temperature, s.top_p, s.top_k, s.min_p, s.repeat_penalty)

    def with_seed(self, seed: int) -> Sampling:
        return replace(self, seed=seed)

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0


def build_sampler_chain(lib: Any, sampling: Sampling, n_vocab: int) -> Any:
    """One chain per branch, each with its own `dist(seed)` so branches are independent."""
    chain = lib.llama_sampler_chain_init(lib.llama_sampler_chain_default_params())
    add = lib.llama_sampler_chain_add
    if sampling.repeat_penalty != 1.0:  # over the last 64 tokens (the vendored API wants n_vocab)
        penalties = lib.llama_sampler_init_penalties(n_vocab, 64, sampling.repeat_penalty, 0, 0)
        add(chain, penalties)
    if sampling.greedy:
        add(chain, lib.llama_sampler_init_greedy())
        return chain
    if sampling.top_k > 0:
        add(chain, lib.llama_sampler_init_top_k(sampling.top_k))
    if 0 < sampling.top_p < 1:
        add(chain, lib.llama_sampler_init_top_p(sampling.top_p, 1))
    if sampling.min_p > 0:
        add(chain, lib.llama_sampler_init_min_p(sampling.min_p, 1))
    add(chain, lib.llama_sampler_init_temp(sampling.temperature))
    add(chain, lib.llama_sampler_init_dist(sampling.seed & 0xFFFFFFFF))
    return chain
