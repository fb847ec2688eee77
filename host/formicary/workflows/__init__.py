"""End-to-end jobs composed from the stages (`demo`: the main job on the built-in default)."""
