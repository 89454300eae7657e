"""The model: grids, problems (MFGProblem, PlanningProblem, drifts, terminal costs), couplings F(x, m),
densities and schedules.  Imports nothing else from the package."""
