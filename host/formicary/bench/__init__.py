"""On-device benchmarking: `runner` (formicary bench), `verify` (outputs vs TFLM, host or board), `fleet` (many
boards at once)."""
