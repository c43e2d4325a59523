"""Proposals: policy, propose and dry run, decisions, exactly-once execution, reconcile, sweeps."""
