"""Idle-GPU detector Lambda: alerts on GPU nodes that cost money while doing nothing."""
