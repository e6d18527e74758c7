"""Students (GCN, GAT, GIN, MLP, GraphSAGE) and graph-level heads."""

from graphmutual.nn.graph import GraphStudent
from graphmutual.nn.students import GAT, GCN, GIN, MLP, STUDENTS, GraphSAGE, build_student

__all__ = ["GAT", "GCN", "GIN", "MLP", "GraphSAGE", "GraphStudent", "STUDENTS",
           "build_student"]
