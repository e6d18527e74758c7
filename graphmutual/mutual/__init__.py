"""Mutual learning: divergences, adaptive logit weighting, entropy enhancement, the shared
mimicry loss and the cohort."""

from graphmutual.mutual.alw import AdaptiveLogitWeighting, alw_loss, peer_targets
from graphmutual.mutual.divergence import DIVERGENCES, divergence
from graphmutual.mutual.ensemble import METHODS, PRESETS, MutualEnsemble
from graphmutual.mutual.entropy import confidence_penalty, entropy, smooth_target
from graphmutual.mutual.inputs import is_graph_free
from graphmutual.mutual.mimicry import MimicryLoss, MimicryTerms, warmup_ramp

__all__ = [
    "AdaptiveLogitWeighting",
    "DIVERGENCES",
    "METHODS",
    "MimicryLoss",
    "MimicryTerms",
    "MutualEnsemble",
    "PRESETS",
    "alw_loss",
    "confidence_penalty",
    "divergence",
    "entropy",
    "is_graph_free",
    "peer_targets",
    "smooth_target",
    "warmup_ramp",
]
