"""Module, Parameter and containers: registration, traversal, state_dict, modes, repr.

Names, keys, error messages and reprs are compared with PyTorch built with the same
architecture; weights are moved both ways through dicts of NumPy arrays.
"""

import copy
import re
from collections import OrderedDict

import numpy as np
import pytest

import minidl
from minidl import nn
from minidl.tensor import Tensor

torch = pytest.importorskip("torch")


# ---------------------------------------------------------------------- shared models


def build_net(lib):
    """The same nested architecture in minidl (lib=minidl) or PyTorch (lib=torch)."""
    lnn = lib.nn

    class Net(lnn.Module):
        def __init__(self):
            super().__init__()
            self.embed = lnn.Linear(6, 8)
            self.blocks = lnn.ModuleList(
                [lnn.Sequential(lnn.Linear(8, 8), lnn.Tanh()) for _ in range(2)]
            )
            self.heads = lnn.ModuleDict(
                {"cls": lnn.Linear(8, 3), "reg": lnn.Linear(8, 1, bias=False)}
            )
            self.register_buffer("scale", lib.ones(3) * 2)
            self.register_buffer("cache", lib.zeros(2), persistent=False)

        def forward(self, x):
            h = self.embed(x).relu()
            for block in self.blocks:
                h = h + block(h)
            return self.heads["cls"](h) * self.scale, self.heads["reg"](h)

    return Net()


def build_seq(lib):
    lnn = lib.nn
    return lnn.Sequential(OrderedDict([
        ("features", lnn.Sequential(lnn.Linear(5, 7), lnn.ReLU(), lnn.Linear(7, 7))),
        ("act", lnn.GELU()),
        ("head", lnn.ModuleDict({"out": lnn.Linear(7, 2)})),
    ]))


def torch_to_numpy(state):
    return {k: v.detach().cpu().numpy().copy() for k, v in state.items()}


def minidl_to_torch(state):
    return {k: torch.from_numpy(np.array(v.numpy(), copy=True)) for k, v in state.items()}


def torch_size_to_tuple(message):
    """PyTorch prints shapes as torch.Size([3, 4]); minidl as (3, 4)."""
    def tup(match):
        dims = [d.strip() for d in match.group(1).split(",") if d.strip()]
        return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"
    return re.sub(r"torch\.Size\(\[([^\]]*)\]\)", tup, message)


# ---------------------------------------------------------------------- Parameter


def test_parameter_shares_ndarray_and_tensor_memory():
    arr = np.zeros((2, 3), dtype=np.float64)
    p = nn.Parameter(arr)
    assert isinstance(p, Tensor) and isinstance(p, nn.Parameter)
    assert p.requires_grad and p.is_leaf and p.grad_fn is None
    assert p.dtype == np.float64  # kept as given
    arr[0, 0] = 5.0
    assert p.data[0, 0] == 5.0
    t = minidl.ones(4)
    q = nn.Parameter(t, requires_grad=False)
    assert not q.requires_grad
    q.data[1] = 7.0
    assert t.data[1] == 7.0


def test_parameter_defaults_and_errors():
    assert nn.Parameter([1.0, 2.0]).dtype == np.float32
    assert nn.Parameter().shape == (0,)
    with pytest.raises(RuntimeError, match="floating point"):
        nn.Parameter(np.arange(3))
    assert nn.Parameter(np.arange(3), requires_grad=False).dtype == np.int64
    assert repr(nn.Parameter(np.zeros(2, np.float32))).startswith("Parameter containing:\ntensor(")


# ---------------------------------------------------------------------- registration


def test_attribute_registration():
    m = nn.Module()
    m.w = nn.Parameter(np.ones(3, np.float32))
    m.sub = nn.Linear(2, 2)
    m.register_buffer("running", minidl.zeros(3))
    m.register_buffer("temp", np.ones(2), persistent=False)  # ndarray wrapped
    m.plain = 5
    assert list(m._parameters) == ["w"]
    assert list(m._modules) == ["sub"]
    assert list(m._buffers) == ["running", "temp"]
    assert isinstance(m.temp, Tensor)
    assert m.plain == 5 and "plain" not in m._parameters
    assert [n for n, _ in m.named_parameters()] == ["w", "sub.weight", "sub.bias"]
    assert [n for n, _ in m.named_parameters(recurse=False)] == ["w"]
    assert [n for n, _ in m.named_buffers()] == ["running", "temp"]
    assert list(m.state_dict()) == ["w", "running", "sub.weight", "sub.bias"]

    # assigning None keeps the slot; a non-Parameter cannot replace a parameter
    m.w = None
    assert "w" in m._parameters and m.w is None
    with pytest.raises(TypeError, match="parameter 'w'"):
        m.w = minidl.ones(3)
    with pytest.raises(TypeError, match="child module 'sub'"):
        m.sub = 3
    with pytest.raises(TypeError, match="Parameter or None"):
        m.register_parameter("bad", minidl.ones(2))
    with pytest.raises(KeyError, match="contain"):
        m.register_buffer("a.b", minidl.ones(2))
    with pytest.raises(KeyError, match="already exists"):
        m.register_buffer("plain", minidl.ones(2))
    with pytest.raises(AttributeError, match="has no attribute 'missing'"):
        m.missing  # noqa: B018

    # a buffer can be reassigned through the attribute; deleting unregisters
    m.running = minidl.ones(3)
    assert m._buffers["running"].data.tolist() == [1.0, 1.0, 1.0]
    del m.sub
    assert "sub" not in m._modules
    # as in PyTorch, a parameter slot takes only a Parameter or None until deleted
    with pytest.raises(TypeError, match="parameter 'w'"):
        m.w = nn.ReLU()
    del m.w
    m.w = nn.ReLU()
    assert "w" not in m._parameters and "w" in m._modules
    m.w = nn.Parameter(np.ones(1, np.float32))  # a Parameter replaces a module
    assert "w" in m._parameters and "w" not in m._modules


def test_register_before_init_and_non_leaf():
    class Broken(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(np.ones(2, np.float32))

    with pytest.raises(AttributeError, match="before Module.__init__"):
        Broken()
    m = nn.Module()
    x = minidl.ones(2, requires_grad=True)
    y = x * 2
    p = nn.Parameter.__new__(nn.Parameter)
    p.__dict__.update(y.__dict__)
    with pytest.raises(ValueError, match="non-leaf"):
        m.register_parameter("p", p)


def test_named_parameters_modules_buffers_match_torch():
    ours, theirs = build_net(minidl), build_net(torch)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()]
    assert [n for n, _ in ours.named_children()] == [n for n, _ in theirs.named_children()]
    assert [p.shape for p in ours.parameters()] == [tuple(p.shape) for p in theirs.parameters()]
    assert [type(m).__name__ for m in ours.modules()] == [
        type(m).__name__ for m in theirs.modules()
    ]
    assert [type(m).__name__ for m in ours.children()] == [
        type(m).__name__ for m in theirs.children()
    ]
    prefixed = [n for n, _ in ours.named_parameters(prefix="model")]
    assert prefixed == [n for n, _ in theirs.named_parameters(prefix="model")]


def test_shared_parameters_and_modules_yielded_once():
    def tied(lib):
        lnn = lib.nn
        shared = lnn.Linear(4, 4)
        model = lnn.Sequential(shared, lnn.ReLU(), shared, lnn.Linear(4, 2))
        model[3].weight = lnn.Parameter(model[3].weight.data)  # re-registered, not shared
        return model

    ours, theirs = tied(minidl), tied(torch)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert len(list(ours.parameters())) == 4
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    # state_dict is not deduplicated (PyTorch keeps both names of a shared module)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    all_names = [n for n, _ in ours.named_parameters(remove_duplicate=False)]
    assert all_names == [n for n, _ in theirs.named_parameters(remove_duplicate=False)]


def test_get_submodule_and_parameter():
    model = build_net(minidl)
    assert model.get_submodule("blocks.1.0") is model.blocks[1][0]
    assert model.get_parameter("heads.cls.bias") is model.heads["cls"].bias
    assert model.get_submodule("") is model
    with pytest.raises(AttributeError, match="nope"):
        model.get_submodule("blocks.nope")


# ---------------------------------------------------------------------- state_dict


def test_state_dict_keys_match_torch():
    for build in (build_net, build_seq):
        ours, theirs = build(minidl), build(torch)
        ours_sd, theirs_sd = ours.state_dict(), theirs.state_dict()
        assert isinstance(ours_sd, OrderedDict)
        assert list(ours_sd) == list(theirs_sd)
        for key in ours_sd:
            assert ours_sd[key].shape == tuple(theirs_sd[key].shape), key
        assert list(ours.state_dict(prefix="m.")) == list(theirs.state_dict(prefix="m."))


def test_state_dict_values_are_detached_views():
    model = nn.Linear(3, 2)
    sd = model.state_dict()
    assert type(sd["weight"]) is Tensor and not sd["weight"].requires_grad
    sd["weight"].data[0, 0] = 42.0  # shares memory with the parameter, as in PyTorch
    assert model.weight.data[0, 0] == 42.0
    kept = model.state_dict(keep_vars=True)
    assert kept["weight"] is model.weight


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_weights_move_both_ways(dtype):
    torch_dtype = getattr(torch, dtype)
    theirs = build_net(torch).to(torch_dtype)
    ours = build_net(minidl)
    if dtype == "float64":
        ours.double()
    result = ours.load_state_dict(torch_to_numpy(theirs.state_dict()))
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert repr(result) == "<All keys matched successfully>"

    x = np.random.default_rng(0).standard_normal((5, 6)).astype(dtype)
    ours_out = ours(minidl.from_numpy(x))
    with torch.no_grad():
        theirs_out = theirs(torch.from_numpy(x))
    tol = 1e-12 if dtype == "float64" else 1e-5
    for a, b in zip(ours_out, theirs_out):
        assert a.dtype == np.dtype(dtype)
        np.testing.assert_allclose(a.detach().numpy(), b.numpy(), rtol=tol, atol=tol)

    # and back: a fresh torch model loads minidl's weights and agrees
    ours.heads["cls"].weight.data[...] += 0.5
    back = build_net(torch).to(torch_dtype)
    back.load_state_dict(minidl_to_torch(ours.state_dict()))
    with torch.no_grad():
        back_out = back(torch.from_numpy(x))
    ours_out = ours(minidl.from_numpy(x))
    for a, b in zip(ours_out, back_out):
        np.testing.assert_allclose(a.detach().numpy(), b.numpy(), rtol=tol, atol=tol)


def test_load_accepts_torch_tensors_and_keeps_model_dtype():
    theirs = build_seq(torch).double()
    ours = build_seq(minidl)  # float32
    arrays_before = [p.data for p in ours.parameters()]
    ours.load_state_dict(theirs.state_dict())  # torch CPU tensors convert via __array__
    for p, before in zip(ours.parameters(), arrays_before):
        assert p.data is before  # copied into the existing arrays
        assert p.dtype == np.float32
    for (name, p), tp in zip(ours.named_parameters(), theirs.parameters()):
        np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-6, err_msg=name)


def test_load_assign_takes_checkpoint_arrays():
    model = nn.Linear(3, 2)
    weight = np.arange(6, dtype=np.float64).reshape(2, 3)
    bias = np.zeros(2, dtype=np.float64)
    model.load_state_dict({"weight": weight, "bias": bias}, assign=True)
    assert isinstance(model.weight, nn.Parameter) and model.weight.requires_grad
    assert model.weight.dtype == np.float64
    weight[0, 0] = -1.0
    assert model.weight.data[0, 0] == -1.0


def test_strict_load_lists_missing_unexpected_and_mismatched_keys():
    def damaged(state):
        state = dict(state)
        del state["features.0.bias"]
        state["features.9.weight"] = state["features.0.weight"]
        state["extra"] = state["head.out.bias"]
        state["features.2.weight"] = state["features.2.weight"][:, :3]
        return state

    theirs = build_seq(torch)
    with pytest.raises(RuntimeError) as torch_err:
        build_seq(torch).load_state_dict(damaged(theirs.state_dict()))
    ours = build_seq(minidl)
    with pytest.raises(RuntimeError) as ours_err:
        ours.load_state_dict(damaged(torch_to_numpy(theirs.state_dict())))
    message = str(ours_err.value)
    assert 'Missing key(s) in state_dict: "features.0.bias"' in message
    assert 'Unexpected key(s) in state_dict: "extra", "features.9.weight"' in message
    assert (
        "size mismatch for features.2.weight: copying a param with shape (7, 3) from "
        "checkpoint, the shape in current model is (7, 7)." in message
    )
    assert message == torch_size_to_tuple(str(torch_err.value))


def test_non_strict_load_returns_keys_but_shape_errors_still_raise():
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    state = {"0.weight": np.ones((3, 4), np.float32), "5.bias": np.ones(1, np.float32)}
    result = model.load_state_dict(state, strict=False)
    assert result.missing_keys == ["0.bias", "2.weight", "2.bias"]
    assert result.unexpected_keys == ["5.bias"]
    assert "missing_keys=['0.bias'" in repr(result)
    assert np.all(model[0].weight.data == 1.0)
    with pytest.raises(RuntimeError, match=re.escape(
        "size mismatch for 0.weight: copying a param with shape (4, 3) from checkpoint, "
        "the shape in current model is (3, 4)."
    )):
        model.load_state_dict({"0.weight": np.ones((4, 3))}, strict=False)
    with pytest.raises(TypeError, match="dict-like"):
        model.load_state_dict([1, 2])


def test_non_persistent_buffer_left_out_and_loaded_buffers():
    ours = build_net(minidl)
    assert "cache" not in ours.state_dict() and "scale" in ours.state_dict()
    state = torch_to_numpy(build_net(torch).state_dict())
    state["scale"] = np.array([1.0, 2.0, 3.0], np.float32)
    ours.load_state_dict(state)
    assert ours.scale.data.tolist() == [1.0, 2.0, 3.0]


# ---------------------------------------------------------------------- modes, grads, apply


def test_train_eval_propagate():
    model = build_net(minidl)
    assert all(m.training for m in model.modules())
    assert model.eval() is model
    assert not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())
    model.blocks.train(False)
    assert model.training and not model.blocks[0][1].training
    with pytest.raises(ValueError, match="boolean"):
        model.train("yes")


def test_zero_grad_and_requires_grad():
    model = nn.Sequential(nn.Linear(3, 2), nn.Tanh(), nn.Linear(2, 1))
    model(minidl.randn(4, 3)).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad(set_to_none=False)
    for p in model.parameters():
        assert p.grad.shape == p.shape and np.all(p.grad.data == 0)
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())
    model[0].requires_grad_(False)
    model(minidl.randn(4, 3)).sum().backward()
    assert model[0].weight.grad is None and model[2].weight.grad is not None


def test_apply_visits_children_first_like_torch():
    ours_seen, theirs_seen = [], []
    assert build_net(minidl).apply(lambda m: ours_seen.append(type(m).__name__)) is not None
    build_net(torch).apply(lambda m: theirs_seen.append(type(m).__name__))
    assert ours_seen == theirs_seen

    def init_weights(m):
        if isinstance(m, nn.Linear):
            nn.init.constant_(m.weight, 0.5)

    model = build_net(minidl).apply(init_weights)
    assert all(np.all(m.weight.data == 0.5) for m in model.modules() if isinstance(m, nn.Linear))


def test_to_float64_keeps_parameter_identity():
    model = build_net(minidl)
    model.register_buffer("steps", np.zeros((), dtype=np.int64))
    params = list(model.parameters())
    cls_out, reg_out = model(minidl.randn(2, 6))
    (cls_out.sum() + reg_out.sum()).backward()
    assert model.to(minidl.float64) is model
    assert [id(p) for p in model.parameters()] == [id(p) for p in params]
    assert all(isinstance(p, nn.Parameter) and p.dtype == np.float64 for p in params)
    assert all(p.grad.dtype == np.float64 for p in params)
    assert model.scale.dtype == np.float64 and model.steps.dtype == np.int64
    out, _ = model(minidl.randn(2, 6, dtype=minidl.float64))
    assert out.dtype == np.float64
    model.float()
    assert all(p.dtype == np.float32 for p in params)
    model.to("float64")
    model.to(dtype=np.float32)
    model.to("cpu")
    assert all(p.dtype == np.float32 for p in params)
    with pytest.raises(TypeError, match="floating point"):
        model.to(np.int32)


def test_hooks():
    layer = nn.Linear(2, 2)
    seen = []
    pre = layer.register_forward_pre_hook(lambda m, args: (args[0] * 0,))
    post = layer.register_forward_hook(lambda m, args, out: seen.append(out.shape))
    out = layer(minidl.ones(3, 2))
    np.testing.assert_allclose(out.detach().numpy(), np.broadcast_to(layer.bias.data, (3, 2)))
    assert seen == [(3, 2)]
    pre.remove()
    post.remove()
    layer(minidl.ones(1, 2))
    assert seen == [(3, 2)]
    with layer.register_forward_hook(lambda m, args, out: out * 0):
        assert np.all(layer(minidl.ones(1, 2)).detach().numpy() == 0)
    assert np.any(layer(minidl.ones(1, 2)).detach().numpy() != 0)


def test_forward_missing_and_deepcopy():
    with pytest.raises(NotImplementedError, match='missing the required "forward"'):
        nn.Module()(1)
    model = build_seq(minidl)
    clone = copy.deepcopy(model)
    for p, q in zip(model.parameters(), clone.parameters()):
        assert isinstance(q, nn.Parameter) and q is not p
        np.testing.assert_array_equal(p.data, q.data)
    clone[0][0].weight.data[...] = 0
    assert np.any(model[0][0].weight.data != 0)


# ---------------------------------------------------------------------- repr


def test_repr_matches_torch():
    assert repr(nn.Sequential(nn.Linear(4, 3), nn.ReLU())) == repr(
        torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU())
    )
    assert repr(build_net(minidl)) == repr(build_net(torch))
    assert repr(build_seq(minidl)) == repr(build_seq(torch))
    assert repr(nn.ModuleList()) == repr(torch.nn.ModuleList())


# ---------------------------------------------------------------------- containers


def test_sequential_indexing_and_editing():
    layers = [nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)]
    seq = nn.Sequential(*layers)
    assert len(seq) == 3 and list(seq) == layers
    assert seq[0] is layers[0] and seq[-1] is layers[2]
    sub = seq[1:]
    assert isinstance(sub, nn.Sequential) and list(sub._modules) == ["1", "2"]
    with pytest.raises(IndexError, match="out of range"):
        seq[3]
    x = minidl.randn(4, 2)
    np.testing.assert_allclose(seq(x).detach().numpy(),
                               layers[2](layers[1](layers[0](x))).detach().numpy())
    seq.append(nn.Sigmoid())
    assert list(seq._modules) == ["0", "1", "2", "3"]
    del seq[1]
    assert list(seq._modules) == ["0", "1", "2"] and seq[1] is layers[2]
    seq[0] = nn.Identity()
    assert isinstance(seq[0], nn.Identity)
    seq.insert(0, nn.Tanh())
    assert isinstance(seq[0], nn.Tanh) and len(seq) == 4
    named = nn.Sequential(OrderedDict([("a", nn.Linear(1, 1)), ("b", nn.ReLU())]))
    assert list(named.state_dict()) == ["a.weight", "a.bias"]
    assert isinstance(named[1], nn.ReLU)
    assert len(named + nn.Sequential(nn.Tanh())) == 3


def test_module_list_and_dict():
    a, b, c = nn.Linear(1, 1), nn.ReLU(), nn.Tanh()
    ml = nn.ModuleList([a])
    ml.append(b).extend([c])
    assert len(ml) == 3 and list(ml) == [a, b, c] and ml.index(c) == 2
    ml.insert(1, nn.Identity())
    assert [type(m).__name__ for m in ml] == ["Linear", "Identity", "ReLU", "Tanh"]
    assert list(ml._modules) == ["0", "1", "2", "3"]
    assert list(ml[1:3]) == [ml[1], ml[2]] and ml[-1] is c
    del ml[0]
    assert list(ml._modules) == ["0", "1", "2"] and ml.index(b) == 1
    with pytest.raises(ValueError):
        ml.index(a)
    with pytest.raises(TypeError, match="iterable"):
        ml.extend(nn.ReLU())
    assert [n for n, _ in nn.ModuleList([a, nn.Linear(2, 2)]).named_parameters()] == [
        "0.weight", "0.bias", "1.weight", "1.bias"]

    md = nn.ModuleDict({"x": a})
    md["y"] = b
    md.update([("z", c)])
    assert list(md.keys()) == ["x", "y", "z"] and "y" in md and len(md) == 3
    assert md.pop("y") is b and list(md) == ["x", "z"]
    assert [n for n, _ in md.named_parameters()] == ["x.weight", "x.bias"]


def test_parameter_list_and_dict():
    pl = nn.ParameterList([minidl.ones(2), np.zeros(3, np.float32)])
    pl.append(nn.Parameter(np.ones(1, np.float32)))
    assert len(pl) == 3 and all(isinstance(p, nn.Parameter) for p in pl)
    assert [n for n, _ in pl.named_parameters()] == ["0", "1", "2"]
    assert pl[-1].shape == (1,)
    theirs = torch.nn.ParameterList([torch.ones(2), torch.zeros(3)])
    assert repr(nn.ParameterList([minidl.ones(2), minidl.zeros(3)])) == repr(theirs).replace(
        "torch.float32", "float32")

    pd = nn.ParameterDict({"alpha": minidl.ones(1)})
    pd["beta"] = np.zeros(2, np.float32)
    assert list(pd.keys()) == ["alpha", "beta"] and isinstance(pd["beta"], nn.Parameter)
    assert list(pd.state_dict()) == ["alpha", "beta"]


def test_nn_namespace_exports():
    for name in nn.__all__:
        assert getattr(nn, name) is not None, name
    assert nn.functional.linear is not None and nn.init.kaiming_uniform_ is not None
