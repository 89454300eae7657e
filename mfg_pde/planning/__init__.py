"""The planning problem (prescribed terminal density): Hopf-Cole sweeps (hopf_cole), the exact per-axis
semigroup for the Strang scheme (semigroup), log-domain Sinkhorn with the outer fixed point (sinkhorn), and
Newton for the congestion Hamiltonian (congestion)."""
