"""Helpers shared by the test folders, imported as `tests.support.<module>` (the repository root is on pytest's
`pythonpath`): no sys.path edits and no loading of another folder's conftest.py by file path.

- `tfl_builder`: TensorFlow-free .tflite flatbuffers (single-op and small models)
- `strategies`: Hypothesis strategies for the kernel property tests
- `opmodels`: single-op models through the TensorFlow converter, and the generated-C-vs-TFLM assertions
- `hostbuild`: host builds of the firmware app/protocol with ASan/UBSan
- `device`: the fake model's expected outputs and a pipe transport to a host-built device
- `fake_ppk2`: a simulated Nordic PPK2 on a pseudo-terminal
- `xdist_groups`: a pytest plugin (tests/conftest.py) that keeps `xdist_group` marks working on pytest 9.2
"""
