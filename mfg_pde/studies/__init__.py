"""Paper-specific scenarios: the demand-response fleet (demand_response) and diffusion models
(diffusion_models)."""
