"""Students (GCN, GAT, GIN, MLP, GraphSAGE), graph-level heads and the fused cohort."""

from graphmutual.nn.fused import FusedCohort, fused_support
from graphmutual.nn.graph import GraphStudent
from graphmutual.nn.students import (
    EDGE_FEATURE_STUDENTS,
    GAT,
    GCN,
    GIN,
    GINE,
    MLP,
    STUDENTS,
    GraphSAGE,
    build_student,
)

__all__ = ["EDGE_FEATURE_STUDENTS", "GAT", "GCN", "GIN", "GINE", "MLP", "FusedCohort",
           "GraphSAGE", "GraphStudent", "STUDENTS", "build_student", "fused_support"]
