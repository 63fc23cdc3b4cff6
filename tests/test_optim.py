"""bpfast.optim is torch.optim: the same trajectories, the same schedules, state that travels.

Each optimizer of bpfast.optim trains a network by ``fit(shuffle=False)``
while a PyTorch copy of the network, in the same dtype, is trained by the
torch.optim class of the same name, built from the same hyperparameters
(bpfast's names are torch's), over the same minibatches.  Parameters after
two epochs and the per-epoch losses must agree (float64 rtol 1e-9, float32
1e-4), for batch sizes 1, 7 and 32 (45 samples: partial last batches), label
and real targets, one and two threads.
"""

import copy
import pickle

import numpy as np
import pytest

import bpfast
from bpfast import optim
from conftest import assert_same_params, params_snapshot

torch = pytest.importorskip("torch")

N = 45
TRAJECTORY_RTOL = {"float32": 1e-4, "float64": 1e-9}
# name -> (class, hyperparameters): defaults, and every branch of each rule
CONFIGS = {
    "sgd": (optim.SGD, dict(lr=0.1)),
    "sgd-momentum-dampening": (optim.SGD, dict(lr=0.05, momentum=0.9, dampening=0.3)),
    "sgd-nesterov-wd": (optim.SGD, dict(lr=0.05, momentum=0.8, nesterov=True,
                                        weight_decay=0.01)),
    "adam": (optim.Adam, dict()),
    "adam-lr-wd": (optim.Adam, dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.05)),
    "adam-amsgrad": (optim.Adam, dict(lr=0.01, amsgrad=True, eps=1e-6)),
    "adamw": (optim.AdamW, dict(lr=0.01)),
    "adamw-amsgrad": (optim.AdamW, dict(lr=0.01, weight_decay=0.1, amsgrad=True)),
    "rmsprop": (optim.RMSprop, dict()),
    "rmsprop-centered-momentum-wd": (optim.RMSprop, dict(lr=0.005, alpha=0.9, centered=True,
                                                         momentum=0.5, weight_decay=0.01)),
    "rmsprop-momentum": (optim.RMSprop, dict(lr=0.005, momentum=0.9)),
    "adagrad": (optim.Adagrad, dict()),
    "adagrad-decay-init-wd": (optim.Adagrad, dict(lr=0.05, lr_decay=0.01,
                                                  initial_accumulator_value=0.1,
                                                  weight_decay=0.02)),
    "rprop": (optim.Rprop, dict()),
    "rprop-custom": (optim.Rprop, dict(lr=0.003, etas=(0.3, 1.5), step_sizes=(1e-4, 0.1))),
    "adamax": (optim.Adamax, dict()),
    "adamax-wd": (optim.Adamax, dict(lr=0.01, betas=(0.8, 0.9), eps=1e-4, weight_decay=0.05)),
}
# (layers, activation, output, loss, targets)
NETWORKS = {
    "relu-softmax-labels": ([4, 6, 3], "relu", "softmax", "cross_entropy", "labels"),
    "tanh-sigmoid-real": ([4, 5, 5, 2], "tanh", "sigmoid", "mse", "real"),
}
BATCHES = [(1, 1), (7, 1), (32, 1), (7, 2), (32, 2)]     # (batch_size, n_threads)


def make_data(kind, n_in, n_out, dtype, seed=7):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, n_in)).astype(dtype)
    if kind == "labels":
        return X, rng.integers(0, n_out, size=N)
    return X, rng.uniform(0.05, 0.95, size=(N, n_out)).astype(dtype)


def make_net(network, dtype, seed=0):
    layers, activation, output, loss, _ = NETWORKS[network]
    return bpfast.MLP(layers, activation, output, loss, dtype=dtype, seed=seed)


class TorchTwin:
    """A PyTorch copy of a bpfast network (same dtype), trained by torch.optim."""

    def __init__(self, net, network, opt_class, hyper):
        _, self.activation, self.output, self.loss_name, _ = NETWORKS[network]
        tdtype = getattr(torch, str(net.dtype))
        self.params = []
        for W, b in zip(net.weights, net.biases):
            self.params += [torch.tensor(np.array(W), dtype=tdtype, requires_grad=True),
                            torch.tensor(np.array(b), dtype=tdtype, requires_grad=True)]
        self.opt = getattr(torch.optim, opt_class.__name__)(self.params, **hyper)
        self.dtype = tdtype

    def outputs(self, X):
        a = X
        L = len(self.params) // 2
        for l in range(L):
            z = a @ self.params[2 * l].T + self.params[2 * l + 1]
            if l < L - 1:
                a = torch.relu(z) if self.activation == "relu" else torch.tanh(z)
        return z

    def loss(self, X, Y):
        z = self.outputs(X)
        if self.output == "softmax":
            return torch.nn.functional.cross_entropy(z, Y)
        a = torch.sigmoid(z)
        return 0.5 * ((a - Y) ** 2).sum(dim=1).mean()

    def epoch(self, X, Y, batch_size):
        """One epoch in order; returns the mean of the per-sample losses before each update."""
        Xt = torch.tensor(X, dtype=self.dtype)
        Yt = torch.tensor(Y) if Y.ndim == 1 else torch.tensor(Y, dtype=self.dtype)
        total = 0.0
        for start in range(0, len(X), batch_size):
            xb, yb = Xt[start:start + batch_size], Yt[start:start + batch_size]
            self.opt.zero_grad()
            loss = self.loss(xb, yb)
            loss.backward()
            self.opt.step()
            total += loss.item() * len(xb)
        return total / len(X)

    def arrays(self):
        return [p.detach().numpy().astype(np.float64) for p in self.params]


def bp_arrays(net):
    out = []
    for W, b in zip(net.weights, net.biases):
        out += [np.asarray(W, dtype=np.float64), np.asarray(b, dtype=np.float64)]
    return out


def assert_close(actual, desired, rtol, atol=0.0):
    for a, d in zip(actual, desired):
        np.testing.assert_allclose(a, d, rtol=rtol, atol=atol)


@pytest.mark.parametrize("batch_size,n_threads", BATCHES, ids=[f"b{b}-t{t}" for b, t in BATCHES])
@pytest.mark.parametrize("network", NETWORKS)
@pytest.mark.parametrize("config", CONFIGS)
def test_trajectory_equals_torch_optim(config, network, batch_size, n_threads, dtype):
    opt_class, hyper = CONFIGS[config]
    layers, *_, targets = NETWORKS[network]
    X, Y = make_data(targets, layers[0], layers[-1], dtype)
    net = make_net(network, dtype)
    twin = TorchTwin(net, network, opt_class, hyper)
    opt = opt_class(**hyper)

    hist = net.fit(X, Y, epochs=2, batch_size=batch_size, shuffle=False, optimizer=opt,
                   n_threads=n_threads, progress=False)
    torch_losses = [twin.epoch(X, Y, batch_size) for _ in range(2)]

    rtol = TRAJECTORY_RTOL[dtype]
    # atol: a parameter that passes through ~0 has no meaningful relative error
    atol = 1e-6 if dtype == "float32" else 1e-12
    assert_close(bp_arrays(net), twin.arrays(), rtol, atol)
    np.testing.assert_allclose(hist["loss"], torch_losses, rtol=rtol)
    assert hist["lr"] == [opt.lr] * 2
    assert opt.steps == 2 * -(-N // batch_size)


@pytest.mark.parametrize("config", ["sgd-momentum-dampening", "adam-amsgrad", "adamw",
                                    "rmsprop-centered-momentum-wd", "adagrad-decay-init-wd",
                                    "rprop", "adamax-wd"])
def test_state_dict_equals_torchs(config):
    """After the same steps, our state_dict holds torch's state, array for array."""
    opt_class, hyper = CONFIGS[config]
    network = "tanh-sigmoid-real"
    X, Y = make_data("real", 4, 2, "float64")
    net = make_net(network, "float64")
    twin = TorchTwin(net, network, opt_class, hyper)
    opt = opt_class(**hyper)
    net.fit(X, Y, epochs=1, batch_size=7, shuffle=False, optimizer=opt, progress=False)
    twin.epoch(X, Y, 7)

    ours, theirs = opt.state_dict(), twin.opt.state_dict()
    assert ours["param_groups"][0]["params"] == theirs["param_groups"][0]["params"]
    for key, value in ours["param_groups"][0].items():
        if key != "params":
            assert theirs["param_groups"][0][key] == value, key
    assert set(ours["state"]) == set(theirs["state"])
    for i, entry in theirs["state"].items():
        for key, value in entry.items():
            if value is None:
                continue
            value = value.numpy() if hasattr(value, "numpy") else value
            np.testing.assert_allclose(ours["state"][i][key], value, rtol=1e-9, atol=1e-15,
                                       err_msg=f"state[{i}][{key!r}]")


# ---------------------------------------------------------------- schedules

SCHEDULES = {
    "step": (optim.StepLR, dict(step_size=3, gamma=0.5)),
    "exponential": (optim.ExponentialLR, dict(gamma=0.8)),
    "cosine": (optim.CosineAnnealingLR, dict(T_max=4, eta_min=0.001)),
    "cosine-no-min": (optim.CosineAnnealingLR, dict(T_max=5)),
    "plateau": (optim.ReduceLROnPlateau, dict(monitor="val_loss", factor=0.5, patience=1,
                                              threshold=0.05, cooldown=1, min_lr=0.004)),
}


def torch_schedule(name, lr, monitors=None, epochs=12):
    """The lr of each of `epochs` epochs under torch's scheduler, stepped once per epoch."""
    cls, args = SCHEDULES[name]
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=lr)
    if cls is optim.ReduceLROnPlateau:
        args = {k: v for k, v in args.items() if k != "monitor"}
    sched = getattr(torch.optim.lr_scheduler, cls.__name__)(opt, **args)
    lrs = []
    for epoch in range(epochs):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        if monitors is not None:
            sched.step(monitors[epoch])
        else:
            sched.step()
    return lrs


@pytest.mark.parametrize("split", [False, True], ids=["one-fit", "fits-of-5-and-7"])
@pytest.mark.parametrize("name", SCHEDULES)
def test_schedule_lrs_equal_torchs(name, split):
    cls, args = SCHEDULES[name]
    X, y = make_data("labels", 4, 3, "float64")
    net = make_net("relu-softmax-labels", "float64")
    opt, sched = optim.SGD(lr=0.05), cls(**args)
    fit = dict(optimizer=opt, schedule=sched, batch_size=8, validation_data=(X[:20], y[:20]),
               progress=False)
    if split:       # a schedule counts its own epochs across fit calls
        rows = list(net.fit(X, y, epochs=5, **fit)) + list(net.fit(X, y, epochs=7, **fit))
    else:
        rows = list(net.fit(X, y, epochs=12, **fit))
    ours = [row["lr"] for row in rows]
    monitors = [row["val_loss"] for row in rows] if cls is optim.ReduceLROnPlateau else None
    np.testing.assert_allclose(ours, torch_schedule(name, 0.05, monitors), rtol=1e-12)
    assert sched.last_epoch == 12
    assert opt.lr == sched.lr


def test_plateau_reduces_on_a_stuck_monitor():
    """A monitor that never improves must lower the lr: the test can fail."""
    X, y = make_data("labels", 4, 3, "float64")
    net = make_net("relu-softmax-labels", "float64")
    sched = optim.ReduceLROnPlateau(monitor="val_loss", patience=0, factor=0.5)
    opt = optim.SGD(lr=1e-6)       # too small to learn: val_loss is flat
    hist = net.fit(X, y, epochs=4, optimizer=opt, schedule=sched,
                   validation_data=(X, y), progress=False)
    # epoch 1 sets the best; each later epoch fails to beat it by 1e-4 (relative)
    np.testing.assert_allclose(hist["lr"], [1e-6, 1e-6, 0.5e-6, 0.25e-6], rtol=1e-12)


def test_schedule_with_fits_default_sgd():
    X, y = make_data("labels", 4, 3, "float64")
    net = make_net("relu-softmax-labels", "float64")
    sched = optim.StepLR(2, gamma=0.1)
    hist = net.fit(X, y, epochs=5, lr=0.2, schedule=sched, progress=False)
    np.testing.assert_allclose(hist["lr"], [0.2, 0.2, 0.02, 0.02, 0.002], rtol=1e-12)
    hist = net.fit(X, y, epochs=2, lr=0.2, schedule=sched, progress=False)   # carries on
    np.testing.assert_allclose(hist["lr"], [0.002, 0.0002], rtol=1e-12)


def test_adam_with_cosine_schedule_follows_torch():
    X, y = make_data("labels", 4, 3, "float64")
    net = make_net("relu-softmax-labels", "float64")
    twin = TorchTwin(net, "relu-softmax-labels", optim.Adam, dict(lr=0.02))
    t_sched = torch.optim.lr_scheduler.CosineAnnealingLR(twin.opt, T_max=3)
    net.fit(X, y, epochs=4, batch_size=7, shuffle=False, optimizer=optim.Adam(lr=0.02),
            schedule=optim.CosineAnnealingLR(T_max=3), progress=False)
    for _ in range(4):
        twin.epoch(X, y, 7)
        t_sched.step()
    assert_close(bp_arrays(net), twin.arrays(), 1e-9, 1e-12)


# ---------------------------------------------------------------- state round trips

ROUND_TRIP = ["sgd-momentum-dampening", "adam-amsgrad", "adamw", "rmsprop-centered-momentum-wd",
              "adagrad-decay-init-wd", "rprop-custom"]


def _setup(config, dtype="float64"):
    opt_class, hyper = CONFIGS[config]
    X, y = make_data("labels", 4, 3, dtype)
    return X, y, make_net("relu-softmax-labels", dtype), opt_class(**hyper)


@pytest.mark.parametrize("config", ROUND_TRIP)
def test_two_fits_equal_one(config, dtype):
    X, y, net1, opt1 = _setup(config, dtype)
    _, _, net2, opt2 = _setup(config, dtype)
    s1, s2 = optim.ExponentialLR(0.9), optim.ExponentialLR(0.9)
    net1.fit(X, y, epochs=2, batch_size=5, shuffle=False, optimizer=opt1, schedule=s1,
             progress=False)
    net2.fit(X, y, epochs=1, batch_size=5, shuffle=False, optimizer=opt2, schedule=s2,
             progress=False)
    net2.fit(X, y, epochs=1, batch_size=5, shuffle=False, optimizer=opt2, schedule=s2,
             progress=False)
    assert_same_params(params_snapshot(net1), params_snapshot(net2))
    assert opt1.lr == opt2.lr and opt1.steps == opt2.steps


@pytest.mark.parametrize("how", ["state_dict", "pickle", "deepcopy"])
@pytest.mark.parametrize("config", ROUND_TRIP)
def test_state_round_trip_continues_identically(config, how):
    X, y, net, opt = _setup(config)
    net.fit(X, y, epochs=1, batch_size=4, shuffle=False, optimizer=opt, progress=False)
    if how == "state_dict":
        net2, opt2 = copy.deepcopy(net), type(opt)()
        opt2.load_state_dict(opt.state_dict())
        assert repr(opt2) == repr(opt)
    elif how == "pickle":
        net2, opt2 = pickle.loads(pickle.dumps((net, opt)))
    else:
        net2, opt2 = copy.deepcopy((net, opt))
    for n, o in ((net, opt), (net2, opt2)):
        n.fit(X, y, epochs=1, batch_size=4, shuffle=False, optimizer=o, progress=False)
    assert_same_params(params_snapshot(net), params_snapshot(net2))
    assert opt2.steps == opt.steps


def test_state_dict_is_plain_numbers_and_arrays():
    X, y, net, opt = _setup("adam-amsgrad")
    assert opt.state_dict() == {"state": {}, "param_groups": [dict(
        lr=0.01, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0, amsgrad=True, params=[])]}
    net.step(X, y, opt)
    sd = opt.state_dict()
    assert sorted(sd["state"]) == [0, 1, 2, 3]
    assert sd["state"][0]["exp_avg"].shape == net.weights[0].shape
    assert sd["state"][1]["max_exp_avg_sq"].shape == net.biases[0].shape
    assert sd["state"][0]["step"] == 1.0
    sd["state"][0]["exp_avg"][...] = 123.0       # a copy: the optimizer is not touched
    assert not np.any(opt.state_dict()["state"][0]["exp_avg"] == 123.0)


def test_load_state_dict_checks_shapes_and_keys():
    X, y, net, opt = _setup("adam")
    net.step(X, y, opt)
    sd = opt.state_dict()
    bad = copy.deepcopy(sd)
    bad["state"][0]["exp_avg"] = np.zeros((2, 2))
    loaded = optim.Adam()
    loaded.load_state_dict(bad)          # not bound yet: checked on its first step
    with pytest.raises(ValueError, match="exp_avg"):
        net.step(X, y, loaded)
    with pytest.raises(ValueError, match="exp_avg"):
        opt.load_state_dict(bad)         # bound: checked at once
    missing = copy.deepcopy(sd)
    del missing["state"][2]["exp_avg_sq"]
    other = optim.Adam()
    other.load_state_dict(missing)
    _, _, net2, _ = _setup("adam")
    before = params_snapshot(net2)
    with pytest.raises(ValueError, match="exp_avg_sq"):
        net2.step(X, y, other)
    assert_same_params(before, params_snapshot(net2))
    with pytest.raises(ValueError, match="betas"):
        optim.Adam().load_state_dict({"state": {}, "param_groups": [dict(betas=(2, 0.5))]})


def test_one_step_per_call_and_the_loss_before_it(dtype):
    X, y, net, opt = _setup("adam", dtype)
    twin = TorchTwin(net, "relu-softmax-labels", optim.Adam, {})
    for start in (0, 10, 20):
        loss = net.step(X[start:start + 10], y[start:start + 10], opt)
        twin.opt.zero_grad()
        t_loss = twin.loss(torch.tensor(X[start:start + 10]), torch.tensor(y[start:start + 10]))
        t_loss.backward()
        twin.opt.step()
        np.testing.assert_allclose(loss, t_loss.item(), rtol=TRAJECTORY_RTOL[dtype])
    assert opt.steps == 3
    assert_close(bp_arrays(net), twin.arrays(), TRAJECTORY_RTOL[dtype], 1e-7)


# ---------------------------------------------------------------- errors

BAD_HYPERPARAMETERS = [
    (optim.SGD, dict(lr=0), ValueError, "lr"),
    (optim.SGD, dict(lr=-1), ValueError, "lr"),
    (optim.SGD, dict(lr=float("nan")), ValueError, "lr"),
    (optim.SGD, dict(lr="0.1"), TypeError, "lr"),
    (optim.SGD, dict(momentum=-0.1), ValueError, "momentum"),
    (optim.SGD, dict(nesterov=True), ValueError, "nesterov"),
    (optim.SGD, dict(momentum=0.9, dampening=0.1, nesterov=True), ValueError, "nesterov"),
    (optim.SGD, dict(nesterov=1), TypeError, "nesterov"),
    (optim.SGD, dict(weight_decay=-1), ValueError, "weight_decay"),
    (optim.Adam, dict(betas=(1.0, 0.999)), ValueError, r"betas\[0\]"),
    (optim.Adam, dict(betas=(0.9, -0.1)), ValueError, r"betas\[1\]"),
    (optim.Adam, dict(betas=0.9), TypeError, "betas"),
    (optim.Adam, dict(eps=-1e-8), ValueError, "eps"),
    (optim.Adam, dict(amsgrad="yes"), TypeError, "amsgrad"),
    (optim.AdamW, dict(weight_decay=-0.01), ValueError, "weight_decay"),
    (optim.RMSprop, dict(alpha=-0.5), ValueError, "alpha"),
    (optim.RMSprop, dict(momentum=-1), ValueError, "momentum"),
    (optim.RMSprop, dict(centered=None), TypeError, "centered"),
    (optim.Adagrad, dict(lr_decay=-1), ValueError, "lr_decay"),
    (optim.Adagrad, dict(initial_accumulator_value=-1), ValueError, "initial_accumulator_value"),
    (optim.Rprop, dict(etas=(1.5, 1.2)), ValueError, "etas"),
    (optim.Rprop, dict(etas=(0.5, 0.9)), ValueError, "etas"),
    (optim.Rprop, dict(step_sizes=(1.0, 0.1)), ValueError, "step_sizes"),
    (optim.Adamax, dict(betas=(0.9, 1.5)), ValueError, r"betas\[1\]"),
    (optim.StepLR, dict(step_size=0), ValueError, "step_size"),
    (optim.StepLR, dict(step_size=2, gamma=0), ValueError, "gamma"),
    (optim.ExponentialLR, dict(gamma=-1), ValueError, "gamma"),
    (optim.CosineAnnealingLR, dict(T_max=0), ValueError, "T_max"),
    (optim.CosineAnnealingLR, dict(T_max=3, eta_min=-1), ValueError, "eta_min"),
    (optim.ReduceLROnPlateau, dict(factor=1.0), ValueError, "factor"),
    (optim.ReduceLROnPlateau, dict(patience=-1), ValueError, "patience"),
    (optim.ReduceLROnPlateau, dict(monitor=3), TypeError, "monitor"),
]


@pytest.mark.parametrize("cls,args,error,name", BAD_HYPERPARAMETERS,
                         ids=[f"{c.__name__}-{n}" for c, _, _, n in BAD_HYPERPARAMETERS])
def test_bad_hyperparameters_rejected_at_construction(cls, args, error, name):
    with pytest.raises(error, match=name):
        cls(**args)


def test_lr_is_writable_and_checked():
    opt = optim.Adam()
    opt.lr = 0.5
    assert opt.lr == 0.5 and opt.state_dict()["param_groups"][0]["lr"] == 0.5
    with pytest.raises(ValueError, match="lr"):
        opt.lr = -1
    assert opt.lr == 0.5


def _state(opt):
    sd = opt.state_dict()
    return pickle.dumps(sd), opt.steps


def test_an_optimizer_belongs_to_one_network():
    X, y, net, opt = _setup("adam")
    net.step(X, y, opt)
    _, _, other, _ = _setup("adam")
    before, state = params_snapshot(other), _state(opt)
    with pytest.raises(ValueError, match="another network"):
        other.step(X, y, opt)
    with pytest.raises(ValueError, match="another network"):
        other.fit(X, y, optimizer=opt, progress=False)
    assert_same_params(before, params_snapshot(other))
    assert _state(opt) == state


@pytest.mark.parametrize("bad", [
    dict(X=np.full((3, 4), np.nan)), dict(y=np.array([0, 1, 7])), dict(X=np.zeros((3, 5)))])
def test_rejected_step_changes_nothing(bad):
    X, y, net, opt = _setup("rmsprop-centered-momentum-wd")
    net.step(X, y, opt)
    args = dict(X=X[:3], y=y[:3])
    args.update(bad)
    before, state = params_snapshot(net), _state(opt)
    with pytest.raises(ValueError):
        net.step(args["X"], args["y"], opt)
    with pytest.raises(ValueError):
        net.fit(args["X"], args["y"], optimizer=opt, progress=False)
    assert_same_params(before, params_snapshot(net))
    assert _state(opt) == state


def test_optimizer_with_sgd_arguments_is_a_type_error():
    X, y, net, opt = _setup("adam")
    with pytest.raises(TypeError, match="lr=0.5.*momentum=0.9"):
        net.fit(X, y, optimizer=opt, lr=0.5, momentum=0.9, progress=False)
    with pytest.raises(TypeError, match="optimizer"):
        net.fit(X, y, optimizer="adam", progress=False)
    with pytest.raises(TypeError, match="schedule"):
        net.fit(X, y, optimizer=opt, schedule=0.5, progress=False)
    with pytest.raises(TypeError, match="opt"):
        net.step(X, y, "adam")
    assert opt.steps == 0


def test_schedule_belongs_to_one_optimizer():
    X, y, net, opt = _setup("adam")
    sched = optim.StepLR(2)
    net.fit(X, y, optimizer=opt, schedule=sched, progress=False)
    _, _, net2, opt2 = _setup("adam")
    before = params_snapshot(net2)
    with pytest.raises(ValueError, match="another optimizer"):
        net2.fit(X, y, optimizer=opt2, schedule=sched, progress=False)
    assert_same_params(before, params_snapshot(net2))


def test_plateau_monitor_checked_before_training():
    X, y, net, opt = _setup("adam")
    before = params_snapshot(net)
    with pytest.raises(ValueError, match="val_loss"):
        net.fit(X, y, optimizer=opt, schedule=optim.ReduceLROnPlateau(), progress=False)
    assert_same_params(before, params_snapshot(net))
    assert opt.steps == 0


@pytest.mark.parametrize("call", ["fit", "step"])
def test_divergence_restores_the_optimizer_state(call):
    net = bpfast.MLP([3, 8, 2], "relu", "identity", "mse", seed=0)
    rng = np.random.default_rng(1)
    X, Y = rng.normal(size=(30, 3)), rng.normal(size=(30, 2))
    opt = optim.SGD(lr=0.01, momentum=0.9)
    net.fit(X, Y, epochs=1, optimizer=opt, progress=False)
    opt.lr = 1e6
    before, state = params_snapshot(net), _state(opt)
    with pytest.raises(bpfast.DivergenceError, match="restored"):
        if call == "fit":
            net.fit(100 * X, 1e4 * Y, epochs=3, optimizer=opt, progress=False)
        else:
            for _ in range(10):
                net.step(100 * X, 1e4 * Y, opt)
                before, state = params_snapshot(net), _state(opt)
    assert_same_params(before, params_snapshot(net))
    assert _state(opt) == state
    assert np.all(np.isfinite(net.forward(X)))
    if call == "fit":          # back at the start of the epoch: usable again
        opt.lr = 0.01
        net.fit(X, Y, epochs=1, optimizer=opt, progress=False)
        assert np.all(np.isfinite(net.forward(X)))


def test_early_stopping_restores_the_best_parameters_and_keeps_the_optimizer():
    X, y, net, opt = _setup("adam")
    Xv, yv = X[:15], (y[:15] + 1) % 3           # a validation set that gets worse
    seen = {}

    def remember(epoch, logs):
        seen[epoch] = params_snapshot(net)

    stop = bpfast.EarlyStopping(monitor="val_loss", patience=2)
    hist = net.fit(X, y, epochs=30, optimizer=opt, callbacks=[remember, stop],
                   validation_data=(Xv, yv), progress=False)
    assert stop.stopped_epoch is not None and len(hist) < 30
    assert_same_params(seen[stop.best_epoch], params_snapshot(net))
    steps = opt.steps
    net.fit(X, y, epochs=1, optimizer=opt, progress=False)       # still usable, carries on
    assert opt.steps == steps + N
