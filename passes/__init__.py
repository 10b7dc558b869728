"""Graph passes: each is ``Graph -> Graph`` with a registered name (see ``manager``)."""

from .manager import PASSES, GraphPass, get_pass, graph_pass, run_pipeline

__all__ = ["PASSES", "GraphPass", "get_pass", "graph_pass", "run_pipeline"]
