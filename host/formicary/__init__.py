"""formicary: shrink models for microcontrollers, compile them ahead of time, flash and measure them."""
import os

# tfmot needs Keras 2 (tf_keras). This must be set before TensorFlow is ever imported, so it is set
# the moment the package is imported; a user's explicit setting wins.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
