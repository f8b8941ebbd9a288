"""Federated learning on Flower, secure aggregation, and client-level DP (lesson 06).

Modules
-------
partition
    Splitting a dataset among clients: IID, or label-skewed by a Dirichlet draw (non-IID).
fedavg
    The client's local update, FedAvg and client-level DP strategies, and one experiment's history.
attacks
    Malicious clients: model replacement with a backdoor (Bagdasaryan et al. 2020), a sign-flipped boosted update.
robust
    Flower's robust strategies (FedTrimmedAvg, FedMedian, Krum, MultiKrum) and norm bounding, run in a
    simulation or in this process on recorded replies.
secagg
    Flower's SecAgg+ round beside the same round in the clear, and a record of what the server saw;
    client-level DP through SecAgg+ (each client clips its own update, the server noises the sum).
apps
    The ``ClientApp`` and ``ServerApp`` and a quiet ``run_simulation`` that starts Ray once for many jobs.
deployment
    The same apps as a real SuperLink and SuperNodes on 127.0.0.1 (``mlsec federated``).
masking
    Pairwise masking from scratch (Bonawitz et al. 2017): what Flower's SecAgg+ does inside.
shamir
    Shamir secret sharing from scratch over the prime field 2**521 - 1: ``split`` and ``combine``.
inversion
    Gradient inversion (DLG, iDLG's label rule) on one client's update: the digit rebuilt from a raw
    update, and not from a clipped and noised one, or one averaged over a large batch.
plots
    Lesson 06's figures.
"""
