"""The correctness oracle: what a microcontroller must compute for a model.

`tflm` runs the TFLite Micro interpreter (the reference), `inputs` turns user data into the model's input tensors
(one quantization rule for every caller), `compare` decides whether a device's outputs match the reference (one
set of tolerances). It calls nothing above it: codegen tests, compile, verify, bench and the HIL plugin use it.
"""
