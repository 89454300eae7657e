"""Paper-specific scenarios: the demand-response fleet (demand_response) and diffusion models
(diffusion_models); studies that solve a problem several times: the price of anarchy (anarchy)."""
