"""The net stage: the graph (order, splits), the Net (blobs, replicas, backward plan) and the runner
(threads, processes, the reduction seam)."""
