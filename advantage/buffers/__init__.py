"""On-device replay storage for off-policy algorithms (kept inside the agent state)."""

from advantage.buffers.replay import ReplayBuffer, Sample, add, capacity, init, nbytes, sample, size

__all__ = ["ReplayBuffer", "Sample", "add", "capacity", "init", "nbytes", "sample", "size"]
