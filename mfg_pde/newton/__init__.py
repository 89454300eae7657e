"""Newton on the whole discrete forward-backward system: the driver and the 1-D system (driver), the
direction-split 2-D/3-D system (system_split), dF/dm of the couplings (derivatives) and GMRES (krylov)."""
