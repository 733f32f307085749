"""The one registry every generic test runs over: each optimizer and its configurations.

Adding an optimizer to the test suite is one entry here. Each configuration is the
keyword arguments of its constructor; the generic battery (test_optimizers.py), the
golden fixtures (fixtures/make_fixtures.py) and the live torch parity tests all read it.
"""

from __future__ import annotations

import itertools

import numpy as np


def _product(**options):
    """Every combination of the given option values, as a list of kwargs dicts."""
    keys = list(options)
    return [dict(zip(keys, values)) for values in itertools.product(*options.values())]


def _sgd_cases():
    cases = []
    for c in _product(
        momentum=[0, 0.9],
        dampening=[0, 0.25],
        nesterov=[False, True],
        weight_decay=[0, 0.05],
        maximize=[False, True],
    ):
        if c["nesterov"] and (c["momentum"] == 0 or c["dampening"] != 0):
            continue
        cases.append({"lr": 0.05, **c})
    cases.append({"lr": np.array(0.05), "momentum": 0.9})
    return cases


def _adam_cases(decoupled_default: bool):
    cases = []
    for c in _product(
        amsgrad=[False, True],
        weight_decay=[0, 0.1],
        maximize=[False, True],
        decoupled_weight_decay=[False, True],
    ):
        if decoupled_default and not c.pop("decoupled_weight_decay"):
            continue
        cases.append({"lr": 0.01, **c})
    cases.append({"lr": 0.02, "betas": (0.5, 0.9), "eps": 1e-3})
    cases.append({"lr": np.array(0.01), "amsgrad": True})  # a 0-d array lr, as a tensor lr
    return cases


def _adagrad_cases():
    cases = [
        {"lr": 0.05, **c}
        for c in _product(
            lr_decay=[0, 0.1],
            weight_decay=[0, 0.05],
            initial_accumulator_value=[0, 0.5],
            maximize=[False, True],
        )
    ]
    cases.append({"lr": 0.05, "eps": 1e-3, "lr_decay": 0.01})
    cases.append({"lr": 0.05, "weight_decay": 0.05, "fused": True})  # torch's fused kernel
    cases.append({"lr": np.array(0.05), "lr_decay": 0.1})
    return cases


def _rmsprop_cases():
    cases = [
        {"lr": 0.01, **c}
        for c in _product(
            momentum=[0, 0.9],
            centered=[False, True],
            weight_decay=[0, 0.05],
            maximize=[False, True],
        )
    ]
    cases.append({"lr": 0.01, "alpha": 0.9, "eps": 1e-3, "momentum": 0.5, "centered": True})
    cases.append({"lr": 0.01, "alpha": 0.3, "centered": True})  # lerp weight above 0.5
    cases.append({"lr": np.array(0.01), "momentum": 0.9, "centered": True})
    return cases


def _adadelta_cases():
    cases = [
        {"lr": 1.0, **c}
        for c in _product(rho=[0.9, 0.5], weight_decay=[0, 0.05], maximize=[False, True])
    ]
    cases.append({"lr": 0.5, "rho": 0.95, "eps": 1e-3})
    cases.append({"lr": np.array(1.0), "weight_decay": 0.05})
    return cases


def _adamax_cases():
    cases = [{"lr": 0.01, **c} for c in _product(weight_decay=[0, 0.05], maximize=[False, True])]
    cases.append({"lr": 0.02, "betas": (0.5, 0.9), "eps": 1e-3})
    cases.append({"lr": 0.02, "betas": (0.3, 0.99), "weight_decay": 0.05})  # lerp weight > 0.5
    cases.append({"lr": np.array(0.01), "maximize": True})
    return cases


def _nadam_cases():
    cases = []
    for c in _product(
        weight_decay=[0, 0.1],
        decoupled_weight_decay=[False, True],
        maximize=[False, True],
    ):
        cases.append({"lr": 0.01, **c})
    cases.append({"lr": 0.02, "betas": (0.5, 0.9), "eps": 1e-3, "momentum_decay": 0.05})
    cases.append({"lr": 0.01, "momentum_decay": 0.0, "weight_decay": 0.05, "foreach": True})
    cases.append({"lr": np.array(0.01)})
    return cases


def _radam_cases():
    cases = []
    for c in _product(
        weight_decay=[0, 0.1],
        decoupled_weight_decay=[False, True],
        maximize=[False, True],
    ):
        cases.append({"lr": 0.01, **c})
    # beta2 = 0.9: rho_t passes 5 at step 3 instead of 6; beta2 = 0.3: never rectified.
    cases.append({"lr": 0.02, "betas": (0.5, 0.9), "eps": 1e-3})
    cases.append({"lr": 0.01, "betas": (0.8, 0.3), "weight_decay": 0.05, "foreach": True})
    cases.append({"lr": np.array(0.01)})
    return cases


def _asgd_cases():
    cases = []
    # t0 = 5: averaging (mu != 1) starts at step 8 of the 23.
    for c in _product(t0=[5, 1e6], weight_decay=[0, 0.05], maximize=[False, True]):
        cases.append({"lr": 0.05, **c})
    cases.append({"lr": 0.05, "lambd": 0.1, "alpha": 0.5, "t0": 5})
    cases.append({"lr": 0.05, "lambd": 0.0, "t0": 0, "foreach": True})
    cases.append({"lr": np.array(0.05), "t0": 10})
    return cases


def _rprop_cases():
    cases = []
    # step_sizes (1e-3, 0.02) around lr 0.01 make both clamp bounds bite within 23 steps.
    for c in _product(
        etas=[(0.5, 1.2), (0.3, 1.5)],
        step_sizes=[(1e-6, 50), (1e-3, 0.02)],
        maximize=[False, True],
    ):
        cases.append({"lr": 0.01, **c})
    cases.append({"lr": np.array(0.01), "foreach": True})
    return cases


def _lion_cases():
    # lion-pytorch, the oracle, has no maximize (harness.reference_class adds timm's,
    # on negated gradients) and no tensor lr (test_lion.py checks an array lr).
    cases = [{"lr": 0.01, **c} for c in _product(weight_decay=[0, 0.1])]
    cases.append({"lr": 0.02, "betas": (0.5, 0.9), "weight_decay": 0.05})
    cases.append({"lr": 0.003, "betas": (0.95, 0.98)})
    cases += [{"lr": 0.01, "weight_decay": 0.1, "maximize": m} for m in (False, True)]
    return cases


def _schedule_free_cases(averaging: dict, extra: dict):
    # lr array: schedulefree multiplies it by the warmup and takes max() with a float.
    cases = [{"lr": 0.01, **averaging, **c} for c in _product(weight_decay=[0, 0.1], **extra)]
    cases.append({"lr": 0.02, "r": 0.5, "weight_lr_power": 1.0})
    return cases


def _ademamix_cases():
    # bitsandbytes, the oracle, has no maximize (harness.reference_class adds it, on
    # negated gradients). t_alpha = 10 and t_beta3 = 15 end within the 23 steps; 30 and
    # 40 do not. Six cases keep the fixture small; test_ademamix.py runs every
    # combination of the options live.
    return [
        {"lr": 0.01, "weight_decay": 0},
        {"lr": 0.01},
        {"lr": 0.01, "weight_decay": 0.1, "t_alpha": 10, "maximize": False},
        {"lr": 0.01, "weight_decay": 0, "t_beta3": 15},
        {"lr": 0.01, "weight_decay": 0.1, "t_alpha": 10, "t_beta3": 15, "maximize": True},
        {
            "lr": 0.02,
            "betas": (0.5, 0.9, 0.99),
            "alpha": 2.0,
            "eps": 1e-3,
            "t_alpha": 30,
            "t_beta3": 40,
        },
    ]


def _adan_cases():
    # timm, the oracle, has no maximize (harness.reference_class adds it, on negated
    # gradients). beta1 = 0.3: torch's lerp from the far end (weight 0.7 > 0.5).
    return [
        {"lr": 0.01},
        {"lr": 0.01, "weight_decay": 0.05},
        {"lr": 0.01, "weight_decay": 0.05, "no_prox": True, "maximize": False},
        {"lr": 0.02, "betas": (0.3, 0.5, 0.9), "eps": 1e-3, "weight_decay": 0.02},
        {"lr": 0.01, "weight_decay": 0.05, "maximize": True, "foreach": False},
    ]


def _lamb_cases():
    # timm, the oracle, has no maximize (harness.reference_class adds it, on negated
    # gradients). The default max_grad_norm=1.0 clips: the gradients' total norm is
    # larger. beta1 = 0.3: torch's lerp from the far end (weight 0.7 > 0.5).
    return [
        {"lr": 0.01},
        {"lr": 0.01, "max_grad_norm": None},
        {"lr": 0.01, "weight_decay": 0, "max_grad_norm": None},  # no trust ratio
        {"lr": 0.01, "weight_decay": 0, "always_adapt": True, "max_grad_norm": 3.0},
        {"lr": 0.05, "weight_decay": 0.05, "trust_clip": True},
        {"lr": 0.01, "weight_decay": 0.05, "decoupled_decay": True, "maximize": False},
        {
            "lr": 0.01,
            "weight_decay": 0.05,
            "decoupled_decay": True,
            "corrected_weight_decay": True,
        },
        {"lr": 0.01, "grad_averaging": False, "bias_correction": False},
        {"lr": 0.02, "betas": (0.3, 0.9), "eps": 1e-3, "max_grad_norm": 30.0},
        {"lr": 0.01, "maximize": True, "foreach": False},
    ]


def _lars_cases():
    # timm, the oracle, has no maximize (added as for Lamb). Without weight decay or
    # always_adapt, LARS is SGD with momentum.
    return [
        {"lr": 0.1},
        {"lr": 0.1, "weight_decay": 0.01},
        {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.01, "maximize": False},
        {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01},
        {"lr": 0.1, "momentum": 0.9, "dampening": 0.25, "always_adapt": True},
        {"lr": 0.1, "momentum": 0.5, "weight_decay": 0.01, "trust_clip": True},
        {"lr": 1.0, "trust_coeff": 0.02, "eps": 1e-3, "always_adapt": True, "trust_clip": True},
        {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.01, "maximize": True, "foreach": False},
    ]


def _nadamw_cases():
    # timm's defaults decay (weight_decay=1e-2). beta1 = 0.3: torch's lerp from the far
    # end. corrected_weight_decay: the second group's halved lr against the constructor's.
    return [
        {"lr": 0.01},
        {"lr": 0.01, "weight_decay": 0.05, "maximize": True},
        {"lr": 0.02, "betas": (0.3, 0.5), "eps": 1e-3, "weight_decay": 0.0, "maximize": False},
        {"lr": 0.02, "weight_decay": 0.1, "corrected_weight_decay": True, "foreach": False},
    ]


def _laprop_cases():
    # timm has no maximize (harness.reference_class adds it, on negated gradients).
    return [
        {"lr": 0.01},
        {"lr": 0.01, "weight_decay": 0.05, "maximize": True},
        {"lr": 0.02, "betas": (0.3, 0.5), "eps": 1e-3, "weight_decay": 0.02, "foreach": False},
        {"lr": 0.02, "weight_decay": 0.1, "corrected_weight_decay": True, "maximize": False},
        # An array lr: timm's exp_avg_lr_1 is then an array of its dtype, and it
        # multiplies and adds apart (unfused).
        {"lr": np.array(0.01), "weight_decay": 0.05},
    ]


def _adabelief_cases():
    # rectify (the default): with beta2 = 0.999 the steps 1-5 are SGD's (rho_t < 5), then
    # rectified; with beta2 = 0.9 rectified from step 6 (before it no update without
    # degenerated_to_sgd). timm has no maximize (harness.reference_class adds it).
    return [
        {"lr": 0.01},
        {"lr": 0.01, "rectify": False, "amsgrad": True, "weight_decay": 0.05, "maximize": False},
        {
            "lr": 0.01,
            "betas": (0.8, 0.9),
            "weight_decay": 0.05,
            "decoupled_decay": False,
            "degenerated_to_sgd": False,
        },
        {
            "lr": 0.02,
            "betas": (0.3, 0.9),
            "eps": 1e-8,
            "weight_decay": 0.1,
            "fixed_decay": True,
            "amsgrad": True,
        },
        {"lr": 0.01, "rectify": False, "maximize": True, "foreach": False},
    ]


def _adopt_cases():
    # A parameter's first step only sets exp_avg_sq; the clip bound (t - 1)^clip_exp.
    return [
        {"lr": 0.01},
        {"lr": 0.01, "clip_exp": None, "weight_decay": 0.05, "maximize": False},
        {
            "lr": 0.01,
            "weight_decay": 0.05,
            "decoupled": True,
            "corrected_weight_decay": True,
            "maximize": True,
        },
        {
            "lr": 0.02,
            "betas": (0.3, 0.5),
            "eps": 1e-3,
            "clip_exp": 0.5,
            "weight_decay": 0.02,
            "decoupled": True,
            "foreach": False,
        },
    ]


def _prodigy_cases():
    # prodigyopt, the oracle, has no maximize (added as for Lamb). d grows from d0 by
    # sums over every parameter of every group.
    return [
        {"lr": 1.0, "maximize": False},
        {"lr": 1.0, "weight_decay": 0.01, "decouple": False},
        {"lr": 1.0, "use_bias_correction": True, "safeguard_warmup": True, "weight_decay": 0.01},
        {"lr": 1.0, "betas": (0.0, 0.99), "weight_decay": 0.01, "decouple": False},
        {
            "lr": 0.5,
            "beta3": 0.9,
            "d0": 1e-3,
            "d_coef": 0.5,
            "growth_rate": 1.02,
            "eps": 1e-6,
            "weight_decay": 0.01,
            "maximize": True,
        },
    ]


# name -> list of constructor kwargs (params excluded).
OPTIMIZERS: dict[str, list[dict]] = {
    "SGD": _sgd_cases(),
    "Adam": _adam_cases(decoupled_default=False),
    "AdamW": _adam_cases(decoupled_default=True),
    "Adagrad": _adagrad_cases(),
    "RMSprop": _rmsprop_cases(),
    "Adadelta": _adadelta_cases(),
    "Adamax": _adamax_cases(),
    "NAdam": _nadam_cases(),
    "RAdam": _radam_cases(),
    "ASGD": _asgd_cases(),
    "Rprop": _rprop_cases(),
    "Lion": _lion_cases(),
    "AdamWScheduleFree": _schedule_free_cases(
        {"betas": (0.8, 0.99), "eps": 1e-6}, {"warmup_steps": [0, 5]}
    ),
    "SGDScheduleFree": _schedule_free_cases({"momentum": 0.8}, {"warmup_steps": [0, 5]}),
    "RAdamScheduleFree": _schedule_free_cases(
        {"betas": (0.8, 0.99)}, {"silent_sgd_phase": [True, False]}
    )
    # An SGD phase, then rectified from step 5 of 23.
    + [{"lr": 0.01, "betas": (0.9, 0.9), "silent_sgd_phase": False}],
    "AdEMAMix": _ademamix_cases(),
    "Adan": _adan_cases(),
    "Lamb": _lamb_cases(),
    "Lars": _lars_cases(),
    "NAdamW": _nadamw_cases(),
    "LaProp": _laprop_cases(),
    "AdaBelief": _adabelief_cases(),
    "Adopt": _adopt_cases(),
    "Prodigy": _prodigy_cases(),
}

# Optimizers whose groups must all have the largest lr or 0 (prodigyopt's Prodigy): the
# generic tests' second group keeps the first one's lr.
SHARED_LR = {"Prodigy"}

# Optimizers whose step is two native passes with Python between them (Prodigy's d, from
# sums over every group): the second pass reads the state that the first one stored.
SPLIT_STEP = {"Prodigy"}

# Group values that are sums over the parameters (Prodigy's d estimate), name -> keys:
# in float32 the reference sums with float32 dot products (torch's sdot over terms that
# mostly cancel), numoptim in double, so they agree to a tolerance only.
REDUCED_GROUP_KEYS = {"Prodigy": ("d", "d_max", "d_numerator", "d_denom", "d_hat")}

# Optimizers that step only in train mode (Schedule-Free): the harness calls train()
# on each new one, numoptim's and the reference's alike.
TRAIN_MODE = {"AdamWScheduleFree", "SGDScheduleFree", "RAdamScheduleFree"}

# The reference of the optimizers torch.optim does not have: name -> (module, class).
# Fixtures are made from it, and the live parity tests skip an optimizer whose
# reference is not installed.
ORACLES: dict[str, tuple[str, str]] = {
    "Lion": ("lion_pytorch", "Lion"),
    "AdamWScheduleFree": ("schedulefree", "AdamWScheduleFree"),
    "SGDScheduleFree": ("schedulefree", "SGDScheduleFree"),
    "RAdamScheduleFree": ("schedulefree", "RAdamScheduleFree"),
    "AdEMAMix": ("bitsandbytes", "AdEMAMix"),  # through harness.ademamix_oracle
    "Adan": ("timm", "Adan"),  # timm/optim/adan.py through harness.load_timm_module
    "Lamb": ("timm", "Lamb"),  # likewise
    "Lars": ("timm", "Lars"),  # likewise
    "NAdamW": ("timm", "NAdamW"),  # timm/optim/*.py through harness.load_timm_module
    "LaProp": ("timm", "LaProp"),
    "AdaBelief": ("timm", "AdaBelief"),
    "Adopt": ("timm", "Adopt"),
    "Prodigy": ("prodigyopt", "Prodigy"),
}

# Configurations (by index) also checked on one tensor of 2^20+3 elements.
LARGE: dict[str, list[int]] = {
    "SGD": [14],
    "Adam": [15],
    "AdamW": [3],
    "Adagrad": [15],
    "RMSprop": [15],
    "Adadelta": [7],
    "Adamax": [3],
    "NAdam": [5],
    "RAdam": [8],  # rectified from step 3 of the 5
    "ASGD": [9],  # averaging from step 3 of the 5
    "Rprop": [3],
    "Lion": [2],
}

# Optimizers whose update is elementwise, so that every element can be compared and
# results must be bit-identical across threads and SIMD levels.
ELEMENTWISE = [
    "SGD",
    "Adam",
    "AdamW",
    "Adagrad",
    "RMSprop",
    "Adadelta",
    "Adamax",
    "NAdam",
    "RAdam",
    "ASGD",
    "Rprop",
    "Lion",
    "AdamWScheduleFree",
    "SGDScheduleFree",
    "RAdamScheduleFree",
    "AdEMAMix",
    "Adan",
    "Lamb",
    "Lars",
    "NAdamW",
    "LaProp",
    "AdaBelief",
    "Adopt",
    "Prodigy",
]

# Elementwise optimizers whose step count is the group's, counted once per step() call
# whether or not a parameter has a gradient (timm's Adan, Schedule-Free's k), not each
# parameter's own.
GROUP_STEP = {
    "Adan",
    "Lamb",
    "Prodigy",  # its group's k; and its d is one per step for every listing
    "AdamWScheduleFree",
    "SGDScheduleFree",
    "RAdamScheduleFree",
}

# Optimizers that step complex parameters, as torch.optim does (as the real pairs of
# their memory, torch.view_as_real); every configuration of each runs in the complex
# dtypes too. The optimizers beyond torch.optim are left out: their references do not
# step complex parameters as real pairs (lion-pytorch cannot at all: torch.sign has no
# complex version), so numoptim refuses them (tests/test_complex.py). LBFGS, Adafactor
# and Muon have their own tests there.
COMPLEX = [name for name in ELEMENTWISE if name not in ORACLES]
COMPLEX_DTYPES = ["complex64", "complex128"]
# The layout of the complex golden fixtures: the standard one's odd sizes, smaller, so
# that fixtures of every configuration in both dtypes stay small.
COMPLEX_GROUP_SIZES = [[0, 1, 7], [2, 17]]


def steps_complex(name: str, kwargs: dict) -> bool:
    """Whether a configuration steps complex parameters: torch's fused kernels (fused=True)
    refuse them, and numoptim with torch's error (checked in the parity tests)."""
    return name in COMPLEX and not kwargs.get("fused")


def complex_cases():
    """(case id, name, kwargs) for every configuration of the optimizers in COMPLEX."""
    for case in all_cases():
        if case[1] in COMPLEX:
            yield case


# Configurations that must be rejected: (name, kwargs, exception type, message start).
INVALID: list[tuple[str, dict, type, str]] = [
    ("SGD", {"lr": -0.1}, ValueError, "Invalid learning rate: -0.1"),
    ("SGD", {"lr": np.array([0.1, 0.2])}, ValueError, "Tensor lr must be 1-element"),
    ("SGD", {"momentum": -0.5}, ValueError, "Invalid momentum value: -0.5"),
    ("SGD", {"weight_decay": -1.0}, ValueError, "Invalid weight_decay value: -1.0"),
    (
        "SGD",
        {"nesterov": True},
        ValueError,
        "Nesterov momentum requires a momentum and zero dampening",
    ),
    (
        "SGD",
        {"nesterov": True, "momentum": 0.9, "dampening": 0.1},
        ValueError,
        "Nesterov momentum requires",
    ),
    (
        "SGD",
        {"fused": True, "foreach": True},
        RuntimeError,
        "`fused` and `foreach` cannot be `True` together.",
    ),
    ("Adam", {"lr": -1e-3}, ValueError, "Invalid learning rate: -0.001"),
    ("Adam", {"eps": -1.0}, ValueError, "Invalid epsilon value: -1.0"),
    ("Adam", {"betas": (1.0, 0.999)}, ValueError, "Invalid beta parameter at index 0: 1.0"),
    ("Adam", {"betas": (0.9, -0.1)}, ValueError, "Invalid beta parameter at index 1: -0.1"),
    ("Adam", {"weight_decay": -0.1}, ValueError, "Invalid weight_decay value: -0.1"),
    ("Adam", {"betas": (0, 0.99)}, ValueError, "betas must be either both floats or both Tensors"),
    ("AdamW", {"lr": -1.0}, ValueError, "Invalid learning rate: -1.0"),
    ("AdamW", {"betas": (0.9, 1.5)}, ValueError, "Invalid beta parameter at index 1: 1.5"),
    ("Adagrad", {"lr": -0.01}, ValueError, "Invalid learning rate: -0.01"),
    ("Adagrad", {"lr": np.array([0.1, 0.2])}, ValueError, "Tensor lr must be 1-element"),
    ("Adagrad", {"lr_decay": -0.5}, ValueError, "Invalid lr_decay value: -0.5"),
    ("Adagrad", {"weight_decay": -0.1}, ValueError, "Invalid weight_decay value: -0.1"),
    (
        "Adagrad",
        {"initial_accumulator_value": -1.0},
        ValueError,
        "Invalid initial_accumulator_value value: -1.0",
    ),
    ("Adagrad", {"eps": -1e-10}, ValueError, "Invalid epsilon value: -1e-10"),
    (
        "Adagrad",
        {"fused": True, "foreach": True},
        RuntimeError,
        "`fused` and `foreach` cannot be `True` together.",
    ),
    (
        "Adagrad",
        {"fused": True, "differentiable": True},
        RuntimeError,
        "`fused` does not support `differentiable`",
    ),
    ("RMSprop", {"lr": -0.01}, ValueError, "Invalid learning rate: -0.01"),
    ("RMSprop", {"lr": np.array([0.1, 0.2])}, ValueError, "Tensor lr must be 1-element"),
    ("RMSprop", {"eps": -1.0}, ValueError, "Invalid epsilon value: -1.0"),
    ("RMSprop", {"momentum": -0.9}, ValueError, "Invalid momentum value: -0.9"),
    ("RMSprop", {"weight_decay": -0.1}, ValueError, "Invalid weight_decay value: -0.1"),
    ("RMSprop", {"alpha": -0.5}, ValueError, "Invalid alpha value: -0.5"),
    ("Adadelta", {"lr": -1.0}, ValueError, "Invalid learning rate: -1.0"),
    ("Adadelta", {"lr": np.array([0.1, 0.2])}, ValueError, "Tensor lr must be 1-element"),
    ("Adadelta", {"rho": 1.5}, ValueError, "Invalid rho value: 1.5"),
    ("Adadelta", {"rho": -0.1}, ValueError, "Invalid rho value: -0.1"),
    ("Adadelta", {"eps": -1e-6}, ValueError, "Invalid epsilon value: -1e-06"),
    ("Adadelta", {"weight_decay": -0.1}, ValueError, "Invalid weight_decay value: -0.1"),
    ("Adamax", {"lr": -0.002}, ValueError, "Invalid learning rate: -0.002"),
    ("Adamax", {"lr": np.array([0.1, 0.2])}, ValueError, "Tensor lr must be 1-element"),
    ("Adamax", {"eps": -1e-8}, ValueError, "Invalid epsilon value: -1e-08"),
    ("Adamax", {"betas": (1.0, 0.999)}, ValueError, "Invalid beta parameter at index 0: 1.0"),
    ("Adamax", {"betas": (0.9, 1.0)}, ValueError, "Invalid beta parameter at index 1: 1.0"),
    ("Adamax", {"weight_decay": -0.1}, ValueError, "Invalid weight_decay value: -0.1"),
    ("NAdam", {"lr": -1.0}, ValueError, "Invalid learning rate: -1.0"),
    ("NAdam", {"lr": np.array([0.1, 0.2])}, ValueError, "Tensor lr must be 1-element"),
    ("NAdam", {"eps": -1.0}, ValueError, "Invalid epsilon value: -1.0"),
    ("NAdam", {"betas": (1.0, 0.999)}, ValueError, "Invalid beta parameter at index 0: 1.0"),
    ("NAdam", {"betas": (0.9, -0.1)}, ValueError, "Invalid beta parameter at index 1: -0.1"),
    ("NAdam", {"weight_decay": -0.1}, ValueError, "Invalid weight_decay value: -0.1"),
    ("NAdam", {"momentum_decay": -0.1}, ValueError, "Invalid momentum_decay value: -0.1"),
    ("RAdam", {"lr": -1.0}, ValueError, "Invalid learning rate: -1.0"),
    ("RAdam", {"eps": -1e-8}, ValueError, "Invalid epsilon value: -1e-08"),
    ("RAdam", {"betas": (-0.1, 0.999)}, ValueError, "Invalid beta parameter at index 0: -0.1"),
    ("RAdam", {"betas": (0.9, 1.0)}, ValueError, "Invalid beta parameter at index 1: 1.0"),
    ("RAdam", {"weight_decay": -1.0}, ValueError, "Invalid weight_decay value: -1.0"),
    ("ASGD", {"lr": -0.01}, ValueError, "Invalid learning rate: -0.01"),
    ("ASGD", {"lr": np.array([0.1, 0.2])}, ValueError, "Tensor lr must be 1-element"),
    ("ASGD", {"weight_decay": -0.5}, ValueError, "Invalid weight_decay value: -0.5"),
    ("Rprop", {"lr": -0.01}, ValueError, "Invalid learning rate: -0.01"),
    ("Rprop", {"etas": (1.5, 2.0)}, ValueError, "Invalid eta values: 1.5, 2.0"),
    ("Rprop", {"etas": (0.5, 1.0)}, ValueError, "Invalid eta values: 0.5, 1.0"),
    ("Rprop", {"etas": (0.0, 1.2)}, ValueError, "Invalid eta values: 0.0, 1.2"),
    ("Lion", {"lr": -1e-4}, ValueError, "Invalid learning rate: -0.0001"),
    ("Lion", {"lr": np.array([0.1, 0.2])}, ValueError, "Tensor lr must be 1-element"),
    ("Lion", {"betas": (1.0, 0.99)}, ValueError, "Invalid beta parameter at index 0: 1.0"),
    ("Lion", {"betas": (0.9, -0.1)}, ValueError, "Invalid beta parameter at index 1: -0.1"),
    ("Lion", {"weight_decay": -0.1}, ValueError, "Invalid weight_decay value: -0.1"),
    ("Lion", {"eps": 1e-8}, TypeError, "Lion.__init__() got an unexpected keyword argument 'eps'"),
    (
        "Lion",
        {"fused": True},
        TypeError,
        "Lion.__init__() got an unexpected keyword argument 'fused'",
    ),
    ("AdamWScheduleFree", {"lr": -1.0}, ValueError, "Invalid learning rate: -1.0"),
    ("AdamWScheduleFree", {"eps": -1.0}, ValueError, "Invalid epsilon value: -1.0"),
    (
        "AdamWScheduleFree",
        {"betas": (0.0, 0.999)},
        ValueError,
        "Invalid beta parameter at index 0: 0.0 (Schedule-Free needs beta1 > 0)",
    ),
    ("AdamWScheduleFree", {"betas": (0.9, 1.0)}, ValueError, "Invalid beta parameter at index 1"),
    ("AdamWScheduleFree", {"weight_decay": -0.1}, ValueError, "Invalid weight_decay value: -0.1"),
    ("RAdamScheduleFree", {"lr": np.array([0.1, 0.2])}, ValueError, "Tensor lr must be 1-element"),
    ("RAdamScheduleFree", {"betas": (0.0, 0.999)}, ValueError, "Invalid beta parameter at index 0"),
    ("SGDScheduleFree", {"lr": -1.0}, ValueError, "Invalid learning rate: -1.0"),
    ("SGDScheduleFree", {"weight_decay": -0.1}, ValueError, "Invalid weight_decay value: -0.1"),
    (
        "SGDScheduleFree",
        {"momentum": 1.0},
        ValueError,
        "Momentum must be between 0 and 1 exclusive: 1.0",
    ),
    ("SGDScheduleFree", {"momentum": 0}, ValueError, "Momentum must be between 0 and 1 exclusive"),
    ("AdEMAMix", {"lr": -1e-3}, ValueError, "Invalid learning rate: -0.001"),
    ("AdEMAMix", {"lr": np.array([0.1, 0.2])}, ValueError, "Tensor lr must be 1-element"),
    ("AdEMAMix", {"eps": -1e-8}, ValueError, "Invalid epsilon value: -1e-08"),
    (
        "AdEMAMix",
        {"betas": (1.0, 0.999, 0.9999)},
        ValueError,
        "Invalid beta parameter at index 0: 1.0",
    ),
    (
        "AdEMAMix",
        {"betas": (0.9, -0.1, 0.9999)},
        ValueError,
        "Invalid beta parameter at index 1: -0.1",
    ),
    (
        "AdEMAMix",
        {"betas": (0.9, 0.999, 1.0)},
        ValueError,
        "Invalid beta parameter at index 2: 1.0",
    ),
    ("AdEMAMix", {"betas": (0.9, 0.999)}, ValueError, "AdEMAMix takes three betas"),
    ("AdEMAMix", {"weight_decay": -0.1}, ValueError, "Invalid weight_decay value: -0.1"),
    ("AdEMAMix", {"optim_bits": 8}, ValueError, "optim_bits=8 is not supported"),
    (
        "AdEMAMix",
        {"fused": True},
        TypeError,
        "AdEMAMix.__init__() got an unexpected keyword argument 'fused'",
    ),
    ("Adan", {"lr": -1e-3}, ValueError, "Invalid learning rate: -0.001"),
    ("Adan", {"lr": np.array([0.1, 0.2])}, ValueError, "Tensor lr must be 1-element"),
    ("Adan", {"eps": -1e-8}, ValueError, "Invalid epsilon value: -1e-08"),
    ("Adan", {"betas": (1.0, 0.92, 0.99)}, ValueError, "Invalid beta parameter at index 0: 1.0"),
    ("Adan", {"betas": (0.98, -0.1, 0.99)}, ValueError, "Invalid beta parameter at index 1: -0.1"),
    ("Adan", {"betas": (0.98, 0.92, 1.0)}, ValueError, "Invalid beta parameter at index 2: 1.0"),
    ("Adan", {"caution": True}, TypeError, "caution=True is not supported"),
    (
        "Adan",
        {"fused": True},
        TypeError,
        "Adan.__init__() got an unexpected keyword argument 'fused'",
    ),
    ("Lamb", {"lr": -1e-3}, ValueError, "Invalid learning rate: -0.001"),
    ("Lamb", {"lr": np.array([0.1, 0.2])}, ValueError, "learning rate must be a scalar"),
    ("Lamb", {"eps": -1e-6}, ValueError, "Invalid epsilon: -1e-06"),
    ("Lamb", {"weight_decay": -0.1}, ValueError, "Invalid weight_decay: -0.1"),
    ("Lamb", {"caution": True}, TypeError, "caution=True is not supported"),
    (
        "Lamb",
        {"lr": 0.0, "decoupled_decay": True, "corrected_weight_decay": True},
        ValueError,
        "Corrected weight decay requires a positive max lr, got 0.0",
    ),
    ("Lars", {"lr": -1.0}, ValueError, "Invalid learning rate: -1.0"),
    ("Lars", {"momentum": -0.9}, ValueError, "Invalid momentum value: -0.9"),
    ("Lars", {"weight_decay": -0.1}, ValueError, "Invalid weight_decay value: -0.1"),
    (
        "Lars",
        {"nesterov": True, "momentum": 0.9, "dampening": 0.1},
        ValueError,
        "Nesterov momentum requires a momentum and zero dampening",
    ),
    ("NAdamW", {"lr": -1e-3}, ValueError, "Invalid learning rate: -0.001"),
    ("NAdamW", {"lr": np.array([0.1, 0.2])}, ValueError, "Tensor lr must be 1-element"),
    ("NAdamW", {"eps": -1e-8}, ValueError, "Invalid epsilon value: -1e-08"),
    ("NAdamW", {"betas": (1.0, 0.999)}, ValueError, "Invalid beta parameter at index 0: 1.0"),
    ("NAdamW", {"betas": (0.9, -0.1)}, ValueError, "Invalid beta parameter at index 1: -0.1"),
    ("NAdamW", {"weight_decay": -0.1}, ValueError, "Invalid weight_decay value: -0.1"),
    ("NAdamW", {"caution": True}, TypeError, "caution=True is not supported"),
    ("NAdamW", {"clipping_threshold": 1.0}, TypeError, "clipping_threshold is not supported"),
    ("NAdamW", {"capturable": True}, ValueError, "capturable=True is not supported"),
    (
        "NAdamW",
        {"lr": 0.0, "corrected_weight_decay": True},
        ValueError,
        "Corrected weight decay requires a positive max lr, got 0.0.",
    ),
    ("LaProp", {"lr": -1e-3}, ValueError, "Invalid learning rate: -0.001"),
    (
        "LaProp",
        {"lr": np.array([0.1, 0.2])},
        ValueError,
        "learning rate must be a scalar or scalar tensor.",
    ),
    ("LaProp", {"eps": -1e-15}, ValueError, "Invalid epsilon: -1e-15"),
    ("LaProp", {"betas": (1.0, 0.999)}, ValueError, "Invalid beta parameter at index 0: 1.0"),
    ("LaProp", {"betas": (0.9, 1.5)}, ValueError, "Invalid beta parameter at index 1: 1.5"),
    ("LaProp", {"caution": True}, TypeError, "caution=True is not supported"),
    (
        "LaProp",
        {"lr": 0.0, "corrected_weight_decay": True},
        ValueError,
        "Corrected weight decay requires a positive max lr, got 0.0.",
    ),
    ("AdaBelief", {"lr": -1e-3}, ValueError, "Invalid learning rate: -0.001"),
    ("AdaBelief", {"eps": -1e-16}, ValueError, "Invalid epsilon value: -1e-16"),
    ("AdaBelief", {"betas": (1.0, 0.999)}, ValueError, "Invalid beta parameter at index 0: 1.0"),
    ("AdaBelief", {"betas": (0.9, -0.1)}, ValueError, "Invalid beta parameter at index 1: -0.1"),
    (
        "AdaBelief",
        {"fused": True},
        TypeError,
        "AdaBelief.__init__() got an unexpected keyword argument 'fused'",
    ),
    ("Adopt", {"lr": -1e-3}, ValueError, "Invalid learning rate: -0.001"),
    ("Adopt", {"lr": np.array([0.1, 0.2])}, ValueError, "Tensor lr must be 1-element"),
    (
        "Adopt",
        {"lr": np.array(0.01), "foreach": True},
        ValueError,
        "lr as a Tensor is not supported for capturable=False and foreach=True",
    ),
    ("Adopt", {"eps": -1e-6}, ValueError, "Invalid epsilon value: -1e-06"),
    ("Adopt", {"betas": (1.0, 0.9999)}, ValueError, "Invalid beta parameter at index 0: 1.0"),
    ("Adopt", {"betas": (0.9, 1.0)}, ValueError, "Invalid beta parameter at index 1: 1.0"),
    ("Adopt", {"weight_decay": -0.1}, ValueError, "Invalid weight_decay value: -0.1"),
    ("Adopt", {"caution": True}, TypeError, "caution=True is not supported"),
    ("Adopt", {"capturable": True}, ValueError, "capturable=True is not supported"),
    ("Adopt", {"differentiable": True}, ValueError, "differentiable=True is not supported"),
    ("Prodigy", {"d0": 0.0}, ValueError, "Invalid d0 value: 0.0"),
    ("Prodigy", {"lr": 0.0}, ValueError, "Invalid learning rate: 0.0"),
    ("Prodigy", {"eps": 0.0}, ValueError, "Invalid epsilon value: 0.0"),
    ("Prodigy", {"betas": (1.0, 0.999)}, ValueError, "Invalid beta parameter at index 0: 1.0"),
    ("Prodigy", {"betas": (0.9, -0.1)}, ValueError, "Invalid beta parameter at index 1: -0.1"),
    ("Prodigy", {"slice_p": 11}, ValueError, "slice_p=11 is not supported"),
    ("Prodigy", {"fsdp_in_use": True}, ValueError, "fsdp_in_use=True is not supported"),
    ("LBFGS", {"lr": -1.0}, ValueError, "Invalid learning rate: -1.0"),
    ("LBFGS", {"lr": np.array([1.0, 2.0])}, ValueError, "Tensor lr must be 1-element"),
    ("Adafactor", {"lr": -0.01}, ValueError, "Learning rate should be >= 0 but is: -0.01"),
    ("Adafactor", {"lr": np.array([0.1, 0.2])}, ValueError, "Tensor lr must be 1-element"),
    ("Adafactor", {"beta2_decay": 0.5}, ValueError, "beta2_decay should be <= 0 but is: 0.5"),
    ("Adafactor", {"eps": (-1e-30, 1e-3)}, ValueError, "epsilon1 should be >= 0 but is: -1e-30"),
    ("Adafactor", {"eps": (None, -1e-3)}, ValueError, "epsilon2 should be >= 0 but is: -0.001"),
    ("Adafactor", {"d": 0.5}, ValueError, "Clipping threshold d should be >= 1 but is: 0.5"),
    ("Adafactor", {"weight_decay": -0.1}, ValueError, "weight_decay should be >= 0 but is: -0.1"),
    ("Muon", {"lr": -0.02}, ValueError, "Learning rate should be >= 0 but is: -0.02"),
    ("Muon", {"lr": np.array([0.1, 0.2])}, ValueError, "Tensor lr must be 1-element"),
    ("Muon", {"momentum": -0.9}, ValueError, "momentum should be >= 0 but is: -0.9"),
    ("Muon", {"weight_decay": -0.1}, ValueError, "weight decay should be >= 0 but is: -0.1"),
    (
        "Muon",
        {"adjust_lr_fn": "adam"},
        ValueError,
        "Adjust learning rate function adam is not supported",
    ),
]


def _flag_cases(name: str, capturable: bool, fused: bool) -> list[tuple[str, dict, type, str]]:
    """The torch flags numoptim rejects: differentiable, capturable (where torch has it),
    and fused where torch has no fused kernel (a TypeError from the signature)."""
    cases = [(name, {"differentiable": True}, ValueError, "differentiable=True is not supported")]
    if capturable:
        cases.append((name, {"capturable": True}, ValueError, "capturable=True is not supported"))
    if not fused:
        message = f"{name}.__init__() got an unexpected keyword argument 'fused'"
        cases.append((name, {"fused": True}, TypeError, message))
    return cases


# name -> (has a capturable flag in torch, has a fused kernel in torch)
_FLAGS = {
    "SGD": (False, True),
    "Adam": (True, True),
    "AdamW": (True, True),
    "Adagrad": (False, True),
    "RMSprop": (True, False),
    "Adadelta": (True, False),
    "Adamax": (True, False),
    "NAdam": (True, False),
    "RAdam": (True, False),
    "ASGD": (True, False),
    "Rprop": (True, False),
}
INVALID += [case for name, flags in _FLAGS.items() for case in _flag_cases(name, *flags)]


def case_ids(name: str) -> list[str]:
    """Stable ids of an optimizer's configurations: "Adam-0", "Adam-1", ..."""
    return [f"{name}-{i}" for i in range(len(OPTIMIZERS[name]))]


def all_cases():
    """(case id, name, kwargs) for every configuration of every optimizer."""
    for name, configs in OPTIMIZERS.items():
        for i, kwargs in enumerate(configs):
            yield f"{name}-{i}", name, kwargs
