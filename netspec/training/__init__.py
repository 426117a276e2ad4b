"""The training stage: the solver and its methods, LR and momentum policies, coffee breaks, the statistics
lounge and snapshots."""
