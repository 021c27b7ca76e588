"""Farm-proof batches: item records for idempotent re-runs, per-item logs, machine-readable progress."""
