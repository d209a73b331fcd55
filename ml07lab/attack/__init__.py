"""The attacker's side: triggers, the latent backdoor (path A), dataset poisoning (path B)
and the measured end-to-end scenario."""
