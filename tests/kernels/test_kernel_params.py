"""The kernel tests' set parametrization (tests/support/kernel_params.py): a set is a parameter for exactly the ops
it has its own file for, the example budget is split across the sets, and the reference set alone keeps it whole."""
from __future__ import annotations

import pytest
from formicary.codegen.kernel_sets import (
    KernelSet,
    register_kernel_set,
    unregister_kernel_set,
)

from tests.support import kernel_params


@pytest.fixture()
def one_file_set(tmp_path):
    folder = tmp_path / "kp-test"
    folder.mkdir()
    (folder / "conv2d_s8.c").write_text("/* test-only set: only its file name matters here */\n")
    register_kernel_set(KernelSet("kp-test", root=folder))
    yield "kp-test"
    unregister_kernel_set("kp-test")


def test_a_set_is_a_parameter_for_the_ops_it_implements_only(one_file_set):
    assert one_file_set in kernel_params.sets_for("conv2d_s8.c")
    assert kernel_params.sets_for("conv2d_s8.c")[0] == "reference"
    assert one_file_set in kernel_params.sets_for(("add_s8.c", "conv2d_s8.c"))
    assert one_file_set not in kernel_params.sets_for("add_s8.c")      # falls through to reference: tested there


def test_examples_are_split_across_the_sets(one_file_set, monkeypatch):
    n_sets = len(kernel_params.sets_for("conv2d_s8.c"))
    assert n_sets >= 2
    assert kernel_params.examples(40, "conv2d_s8.c") == -(-40 // n_sets)
    assert kernel_params.examples(1, "conv2d_s8.c") == 1
    monkeypatch.setenv(kernel_params.ENV_SCALE, "2")
    assert kernel_params.examples(40, "conv2d_s8.c") == -(-80 // n_sets)


def test_reference_alone_keeps_the_whole_budget():
    assert kernel_params.sets_for("no_such_kernel.c") == ["reference"]
    assert kernel_params.examples(20, "no_such_kernel.c") == 20


def test_extra_set_from_the_environment(tmp_path, monkeypatch):
    (tmp_path / "add_s8.c").write_text("/* test-only */\n")
    monkeypatch.setenv(kernel_params.ENV_EXTRA_SET, f"kp-env={tmp_path}")
    try:
        assert kernel_params.register_env_set() == "kp-env"
        assert "kp-env" in kernel_params.sets_for("add_s8.c")
    finally:
        unregister_kernel_set("kp-env")
    monkeypatch.setenv(kernel_params.ENV_EXTRA_SET, "no-folder")
    with pytest.raises(ValueError, match="NAME=FOLDER"):
        kernel_params.register_env_set()
