"""Mutual learning: divergences, adaptive logit weighting, entropy enhancement, the cohort."""

from graphmutual.mutual.alw import AdaptiveLogitWeighting, alw_loss, peer_targets
from graphmutual.mutual.divergence import DIVERGENCES, divergence
from graphmutual.mutual.ensemble import METHODS, PRESETS, MutualEnsemble
from graphmutual.mutual.entropy import confidence_penalty, entropy, smooth_target

__all__ = [
    "AdaptiveLogitWeighting",
    "DIVERGENCES",
    "METHODS",
    "MutualEnsemble",
    "PRESETS",
    "alw_loss",
    "confidence_penalty",
    "divergence",
    "entropy",
    "peer_targets",
    "smooth_target",
]
