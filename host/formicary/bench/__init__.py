"""On-device benchmarking: `runner` (formicary bench), `energy` and `power` (power sources, energy per inference)."""
