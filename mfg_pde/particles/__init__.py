"""Interacting particles: the N-agent simulator (agents) and McKean-Vlasov utilities (mckean_vlasov)."""
