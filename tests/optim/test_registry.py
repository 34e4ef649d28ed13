import sys

import pytest
import torch

import minidiff.optim
from minidiff.optim import available, create, register, registry


@pytest.fixture
def scratch_registry():
    """Names a test registers are removed afterwards; real optimizers imported meanwhile stay registered.

    Yields a set to which a test fixture adds the names of throw-away modules whose registrations must go too.
    """
    before = dict(registry._REGISTRY)
    throwaway_modules: set[str] = set()
    yield throwaway_modules
    for name, obj in list(registry._REGISTRY.items()):
        if name in before:
            registry._REGISTRY[name] = before[name]
        elif obj.__module__ == __name__ or obj.__module__ in throwaway_modules:
            del registry._REGISTRY[name]


def test_create_adamw_builds_torch_adamw_with_the_given_hyperparameters():
    params = [torch.nn.Parameter(torch.zeros(3))]
    opt = create("adamw", params, lr=1e-2, weight_decay=0.1, betas=(0.9, 0.95))
    assert isinstance(opt, torch.optim.AdamW)
    assert opt.defaults["fused"] is True  # float CPU parameters: torch's fused kernel by default
    group = opt.param_groups[0]
    assert (group["lr"], group["weight_decay"], group["betas"]) == (1e-2, 0.1, (0.9, 0.95))
    assert group["params"][0] is params[0]


def test_adamw_keeps_torchs_choice_where_the_fused_kernel_does_not_apply():
    complex_param = [torch.nn.Parameter(torch.zeros(3, dtype=torch.complex64))]
    assert not create("adamw", complex_param).defaults["fused"]
    assert not create("adamw", [torch.nn.Parameter(torch.zeros(3))], foreach=True).defaults["fused"]
    groups = [{"params": iter([torch.nn.Parameter(torch.zeros(2))]), "lr": 0.1}]  # an iterator is read once
    opt = create("adamw", groups)
    assert opt.defaults["fused"] is True and len(opt.param_groups[0]["params"]) == 1


def test_adamw_fused_default_takes_the_same_steps_as_torchs_default():
    torch.manual_seed(0)
    a, b = torch.nn.Parameter(torch.randn(5, 4)), torch.nn.Parameter(torch.randn(5, 4))
    b.data.copy_(a.data)
    ours, theirs = create("adamw", [a], lr=1e-2), torch.optim.AdamW([b], lr=1e-2)
    for _ in range(5):
        g = torch.randn(5, 4)
        a.grad, b.grad = g.clone(), g.clone()
        ours.step()
        theirs.step()
    torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_available_lists_adamw_sorted():
    names = available()
    assert "adamw" in names
    assert names == sorted(names)


def test_unknown_name_raises_value_error_listing_the_available_ones():
    with pytest.raises(ValueError, match=r"unknown optimizer 'adamx'; available optimizers: .*adamw"):
        create("adamx", [torch.nn.Parameter(torch.zeros(1))])


def test_registered_factory_is_created_by_name(scratch_registry):
    @register("test-sgd")
    def make_sgd(params, lr=0.5):
        return torch.optim.SGD(params, lr=lr)

    opt = create("test-sgd", [torch.nn.Parameter(torch.zeros(1))], lr=0.25)
    assert isinstance(opt, torch.optim.SGD) and opt.param_groups[0]["lr"] == 0.25
    assert "test-sgd" in available()


def test_a_name_cannot_be_taken_twice(scratch_registry):
    with pytest.raises(ValueError, match="'adamw' is already registered"):
        register("adamw")(torch.optim.SGD)
    from minidiff.optim.adamw import AdamW

    register("adamw")(AdamW)  # registering the same object again is harmless (module reloads)


@pytest.fixture
def extra_package_dir(tmp_path, monkeypatch, scratch_registry):
    """A folder added to ``minidiff.optim.__path__``: modules written there behave as modules of the package."""
    monkeypatch.setattr(minidiff.optim, "__path__", [*minidiff.optim.__path__, str(tmp_path)])
    yield tmp_path
    modules = {f"minidiff.optim.{path.stem}" for path in tmp_path.glob("*.py")}
    scratch_registry.update(modules)
    for module in modules:
        sys.modules.pop(module, None)


TOY_MODULE = """
import torch
from minidiff.optim.registry import register

@register("{name}")
class Toy(torch.optim.SGD):
    pass
"""


def test_adding_a_module_to_the_package_is_enough_to_register_an_optimizer(extra_package_dir):
    (extra_package_dir / "toy_sgd.py").write_text(TOY_MODULE.format(name="toy-sgd"))
    (extra_package_dir / "other_file.py").write_text(TOY_MODULE.format(name="renamed"))
    (extra_package_dir / "_private.py").write_text(
        "raise RuntimeError('modules starting with _ are not imported')\n"
    )
    opt = create("toy-sgd", [torch.nn.Parameter(torch.zeros(1))], lr=0.1)  # found through its module name
    assert type(opt).__name__ == "Toy"
    assert (
        type(create("renamed", [torch.nn.Parameter(torch.zeros(1))], lr=0.1)).__name__ == "Toy"
    )  # by scanning
    assert {"toy-sgd", "renamed", "adamw"} <= set(available())


def test_a_broken_sibling_module_does_not_break_create_but_is_reported_by_available(extra_package_dir):
    (extra_package_dir / "broken.py").write_text("import a_package_that_does_not_exist\n")
    assert isinstance(create("adamw", [torch.nn.Parameter(torch.zeros(1))]), torch.optim.AdamW)
    with pytest.raises(ImportError, match="could not import its module 'broken'"):
        available()


def test_bad_names_are_rejected():
    with pytest.raises(ValueError, match="name must be a non-empty str"):
        register("")


def test_the_scratch_registry_fixture_leaves_the_real_registry_as_it_was():
    # Runs after the tests above in file order: their names are gone, the real ones are still there.
    names = available()
    assert "adamw" in names
    assert not {"test-sgd", "toy-sgd", "renamed"} & set(names)
