"""Settings: the typed section of each Hydra group (sections), loaded and validated once (settings)."""
