"""Federated learning on Flower, secure aggregation, and client-level DP (lesson 06).

Modules
-------
masking
    Pairwise masking from scratch (Bonawitz et al. 2017): what Flower's SecAgg+ does inside.
"""
