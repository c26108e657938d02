"""minidl.io.save / load: the safetensors format, written and read with NumPy only.

Expected bytes and values come from the reference implementation (the ``safetensors`` package),
PyTorch, or arrays written out here, never from minidl's own reader checking its own writer.
"""

import json
import os
import pathlib
import struct

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import minidl.io.safetensors as st_module
from minidl.io import SafetensorsError, load, load_metadata, save
from minidl.tensor import Tensor

ALL_DTYPES = [np.float64, np.float32, np.float16, np.int64, np.int32, np.int16, np.int8,
              np.uint64, np.uint32, np.uint16, np.uint8, np.bool_]
SHAPES = [(), (0,), (2, 0, 3), (5,), (3, 4), (2, 3, 4)]


def _values(dtype, shape, rng):
    """Values that use the dtype's range (negative numbers, fractions) where it has one."""
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        values = rng.random(shape) < 0.5
    elif dtype.kind == "f":
        values = (rng.standard_normal(shape) * 100).astype(dtype)
    else:
        info = np.iinfo(dtype)
        values = rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)
    return np.asarray(values)  # arithmetic on a 0-d array gives a NumPy scalar


def _raw_file(path, header, data=b"", pad=True):
    """Write a safetensors file by hand: header is a dict (JSON-encoded here) or raw bytes."""
    if not isinstance(header, bytes):
        header = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        header += b" " * (-len(header) % 8)
    pathlib.Path(path).write_bytes(struct.pack("<Q", len(header)) + header + data)
    return path


def _leftovers(directory, keep):
    """Files in directory other than the expected ones (e.g. a temporary file left behind)."""
    return sorted(set(os.listdir(directory)) - set(keep))


# ------------------------------------------------------------------------------ round trips


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=lambda d: np.dtype(d).name)
def test_round_trip_every_dtype_and_shape(tmp_path, dtype):
    rng = np.random.default_rng(0)
    state = {f"t{i}": _values(dtype, shape, rng) for i, shape in enumerate(SHAPES)}
    path = tmp_path / "w.safetensors"
    save(state, path)
    loaded = load(path)
    assert sorted(loaded) == sorted(state)
    for name, expected in state.items():
        got = loaded[name]
        assert isinstance(got, Tensor)
        assert got.shape == expected.shape, name
        assert got.dtype == expected.dtype, name
        np.testing.assert_array_equal(got.numpy(), expected)


def test_float_special_values_survive_bit_exactly(tmp_path):
    values = np.array([np.nan, np.inf, -np.inf, -0.0, 5e-324, np.finfo(np.float64).max])
    halves = np.array([np.nan, np.inf, -np.inf, -0.0, 6e-8, 65504.0], dtype=np.float16)
    save({"x": values, "h": halves}, tmp_path / "w.safetensors")
    loaded = load(tmp_path / "w.safetensors")
    assert loaded["x"].numpy().tobytes() == values.tobytes()
    assert loaded["h"].numpy().tobytes() == halves.tobytes()


def test_loaded_arrays_are_writable_copies(tmp_path):
    path = tmp_path / "w.safetensors"
    save({"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.ones(4)}, path)
    first = load(path)
    for tensor in first.values():
        array = tensor.numpy()
        assert array.flags.writeable and array.flags.c_contiguous and array.flags.aligned
    first["a"].numpy()[0, 0] = 100.0
    assert not np.shares_memory(first["a"].numpy(), first["b"].numpy())
    assert load(path)["a"].numpy()[0, 0] == 0.0  # the file was not changed through the array


def test_accepted_value_types(tmp_path):
    """Tensors (incl. ones that require grad), arrays, non-contiguous and big-endian arrays,
    NumPy scalars, and any object with __array__."""

    class HasArray:
        def __array__(self, dtype=None, copy=None):
            return np.array([1, 2, 3], dtype=np.int16)

    base = np.arange(12, dtype=np.float64).reshape(3, 4)
    state = {
        "tensor": Tensor(np.ones((2, 2), np.float32), requires_grad=True),
        "transposed": base.T,
        "strided": base[:, ::2],
        "big_endian": np.arange(5, dtype=">i4"),
        "numpy_scalar": np.float32(2.5),
        "has_array": HasArray(),
    }
    path = tmp_path / "w.safetensors"
    save(state, path)
    loaded = load(path)
    np.testing.assert_array_equal(loaded["tensor"].numpy(), np.ones((2, 2), np.float32))
    np.testing.assert_array_equal(loaded["transposed"].numpy(), base.T)
    np.testing.assert_array_equal(loaded["strided"].numpy(), base[:, ::2])
    assert loaded["big_endian"].dtype == np.int32
    np.testing.assert_array_equal(loaded["big_endian"].numpy(), np.arange(5))
    assert loaded["numpy_scalar"].shape == () and loaded["numpy_scalar"].item() == 2.5
    np.testing.assert_array_equal(loaded["has_array"].numpy(), np.array([1, 2, 3], np.int16))


def test_path_like_and_metadata(tmp_path):
    path = tmp_path / "w.safetensors"
    save({"a": np.zeros(2)}, path, metadata={"format": "pt", "note": "héllo\n"})
    assert load_metadata(path) == {"format": "pt", "note": "héllo\n"}
    assert load_metadata(str(path)) == {"format": "pt", "note": "héllo\n"}
    save({"a": np.zeros(2)}, path)
    assert load_metadata(path) == {}


def test_empty_state_dict(tmp_path):
    save({}, tmp_path / "w.safetensors")
    assert load(tmp_path / "w.safetensors") == {}


def test_device_other_than_cpu_goes_through_tensor_to(tmp_path, monkeypatch):
    calls = []

    def fake_to(self, device):
        calls.append(device)
        return self

    monkeypatch.setattr(Tensor, "to", fake_to)
    save({"a": np.ones(2), "b": np.zeros(1)}, tmp_path / "w.safetensors")
    load(tmp_path / "w.safetensors")
    assert calls == []
    load(tmp_path / "w.safetensors", device="cuda")
    assert calls == ["cuda", "cuda"]


# ------------------------------------------------------------------ the reference implementation

def _reference():
    """The safetensors package's NumPy API (the reference implementation), or skip."""
    return pytest.importorskip("safetensors.numpy")


def _reference_error():
    return pytest.importorskip("safetensors").SafetensorError


def test_byte_identical_to_reference_for_every_dtype(tmp_path):
    safetensors_numpy = _reference()
    rng = np.random.default_rng(1)
    # Names chosen so that name order and dtype order disagree, to test the layout rule.
    state = {f"{'zyxwvutsrqpo'[i]}{i}": _values(dtype, (i % 3 + 1, 2), rng)
             for i, dtype in enumerate(ALL_DTYPES)}
    state["scalar"] = np.array(3.0)
    state["empty"] = np.zeros((0, 4), np.float32)
    state["é-unicode"] = np.ones(3, np.int8)
    for metadata in (None, {}, {"format": "pt"}):
        path = tmp_path / "w.safetensors"
        save(state, path, metadata=metadata)
        assert path.read_bytes() == safetensors_numpy.save(state, metadata=metadata), metadata


def test_byte_identical_empty_file(tmp_path):
    safetensors_numpy = _reference()
    save({}, tmp_path / "w.safetensors")
    # the reference's own test pins these 16 bytes
    assert (tmp_path / "w.safetensors").read_bytes() == b"\x08" + b"\x00" * 7 + b"{}" + b" " * 6
    assert (tmp_path / "w.safetensors").read_bytes() == safetensors_numpy.save({})


def test_no_tensors_and_empty_metadata_is_valid_json(tmp_path):
    """safetensors 0.8.0 writes the invalid header ``{},"__metadata__":{}}`` for this input (and
    then cannot read its own file); minidl writes ``{"__metadata__":{}}``, so no byte equality."""
    path = tmp_path / "w.safetensors"
    save({}, path, metadata={})
    assert path.read_bytes() == b"\x18" + b"\x00" * 7 + b'{"__metadata__":{}}' + b" " * 5
    assert load(path) == {} and load_metadata(path) == {}


def test_metadata_with_several_keys_round_trips_both_ways(tmp_path):
    """Bytes cannot match here: the reference keeps __metadata__ in a Rust HashMap, whose key
    order changes from one process to the next, while minidl keeps insertion order. So the test
    is a round trip in both directions instead."""
    safetensors_numpy = _reference()
    state = {"w": np.arange(4, dtype=np.float32)}
    metadata = {"format": "pt", "epoch": "3", "author": "me"}
    path = tmp_path / "ours.safetensors"
    save(state, path, metadata=metadata)
    np.testing.assert_array_equal(safetensors_numpy.load_file(path)["w"], state["w"])
    from safetensors import safe_open

    with safe_open(path, framework="np") as handle:
        assert handle.metadata() == metadata
    theirs = tmp_path / "theirs.safetensors"
    safetensors_numpy.save_file(state, theirs, metadata=metadata)
    assert load_metadata(theirs) == metadata
    np.testing.assert_array_equal(load(theirs)["w"].numpy(), state["w"])


names = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=0, max_size=8)
arrays = st.tuples(
    st.sampled_from(ALL_DTYPES),
    st.lists(st.integers(0, 3), min_size=0, max_size=3),
    st.integers(0, 2**32 - 1),
)


@settings(max_examples=25, deadline=None)
@given(st.dictionaries(names.filter(lambda n: n != "__metadata__"), arrays, max_size=6),
       st.one_of(st.none(), st.dictionaries(names, names, max_size=1)))
def test_drawn_state_dicts_match_reference_bytes(tmp_path_factory, spec, metadata):
    safetensors_numpy = _reference()
    assume(spec or metadata != {})  # the reference's one bad case, see the test below
    state = {name: _values(dtype, tuple(shape), np.random.default_rng(seed))
             for name, (dtype, shape, seed) in spec.items()}
    path = tmp_path_factory.mktemp("drawn") / "w.safetensors"
    save(state, path, metadata=metadata)
    assert path.read_bytes() == safetensors_numpy.save(state, metadata=metadata)
    loaded = load(path)
    assert set(loaded) == set(safetensors_numpy.load_file(path))
    for name, expected in state.items():
        assert loaded[name].dtype == expected.dtype
        np.testing.assert_array_equal(loaded[name].numpy(), expected)


def test_reference_reads_minidl_file(tmp_path):
    safetensors_numpy = _reference()
    torch = pytest.importorskip("torch")
    safetensors_torch = pytest.importorskip("safetensors.torch")
    rng = np.random.default_rng(2)
    state = {name: _values(dtype, (2, 3), rng) for name, dtype in
             [("f64", np.float64), ("f32", np.float32), ("f16", np.float16), ("i64", np.int64),
              ("i8", np.int8), ("u8", np.uint8), ("b", np.bool_)]}
    path = tmp_path / "w.safetensors"
    save(state, path)
    from_numpy = safetensors_numpy.load_file(path)
    from_torch = safetensors_torch.load_file(path)
    for name, expected in state.items():
        np.testing.assert_array_equal(from_numpy[name], expected)
        assert from_numpy[name].dtype == expected.dtype
        np.testing.assert_array_equal(from_torch[name].numpy(), expected)
    assert from_torch["f16"].dtype == torch.float16 and from_torch["b"].dtype == torch.bool


def test_minidl_weights_load_into_torch_linear(tmp_path):
    torch = pytest.importorskip("torch")
    safetensors_torch = pytest.importorskip("safetensors.torch")
    rng = np.random.default_rng(3)
    weight = rng.standard_normal((4, 3)).astype(np.float32)
    bias = rng.standard_normal(4).astype(np.float32)
    path = tmp_path / "linear.safetensors"
    save({"weight": Tensor(weight), "bias": Tensor(bias)}, path)
    linear = torch.nn.Linear(3, 4)
    result = linear.load_state_dict(safetensors_torch.load_file(path))
    assert not result.missing_keys and not result.unexpected_keys
    x = rng.standard_normal((5, 3)).astype(np.float32)
    with torch.no_grad():
        out = linear(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(out, x @ weight.T + bias, rtol=1e-5, atol=1e-6)


def test_torch_written_file_loads_in_minidl(tmp_path):
    torch = pytest.importorskip("torch")
    safetensors_torch = pytest.importorskip("safetensors.torch")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.BatchNorm1d(5),
                                torch.nn.Linear(5, 2).double())
    model.train()
    model[1](torch.randn(8, 5))  # move the running stats away from their initial values
    state = model.state_dict()
    path = tmp_path / "torch.safetensors"
    safetensors_torch.save_file(state, path, metadata={"format": "pt"})
    loaded = load(path)
    assert set(loaded) == set(state)
    for name, expected in state.items():
        assert loaded[name].shape == tuple(expected.shape), name
        assert loaded[name].dtype == expected.numpy().dtype, name
        np.testing.assert_array_equal(loaded[name].numpy(), expected.numpy())
    assert loaded["1.num_batches_tracked"].dtype == np.int64
    assert load_metadata(path) == {"format": "pt"}


def test_bf16_is_converted_exactly_to_float32(tmp_path):
    torch = pytest.importorskip("torch")
    safetensors_torch = pytest.importorskip("safetensors.torch")
    values = torch.tensor([[1.0, -2.5, 3.140625], [1e30, -1e-30, float("inf")]],
                          dtype=torch.bfloat16)
    path = tmp_path / "bf16.safetensors"
    safetensors_torch.save_file({"w": values}, path)
    got = load(path)["w"]
    assert got.dtype == np.float32 and got.shape == (2, 3)
    np.testing.assert_array_equal(got.numpy(), values.float().numpy())


# ---------------------------------------------------------------------------- corrupt files


def test_file_shorter_than_8_bytes(tmp_path):
    for content in (b"", b"\x01\x02\x03"):
        path = tmp_path / "short.safetensors"
        path.write_bytes(content)
        with pytest.raises(SafetensorsError, match=r"short\.safetensors.*too short"):
            load(path)


def test_header_length_past_end_of_file(tmp_path):
    path = tmp_path / "w.safetensors"
    path.write_bytes(struct.pack("<Q", 1000) + b'{"a":1}')
    with pytest.raises(SafetensorsError, match=r"w\.safetensors.*header length 1000 is larger"):
        load(path)
    path.write_bytes(struct.pack("<Q", 2**62) + b"{}")
    with pytest.raises(SafetensorsError, match="above the .*limit"):
        load(path)


def test_truncated_file(tmp_path):
    safetensors_numpy = _reference()
    path = tmp_path / "w.safetensors"
    save({"a": np.arange(10, dtype=np.float32), "b": np.ones(3)}, path)
    full = path.read_bytes()
    path.write_bytes(full[:-5])
    with pytest.raises(SafetensorsError, match=r"w\.safetensors.*truncated.*'a' is cut off"):
        load(path)
    with pytest.raises(_reference_error()):  # the reference refuses it too
        safetensors_numpy.load_file(path)
    path.write_bytes(full[:20])  # cut inside the header
    with pytest.raises(SafetensorsError, match="larger than the file"):
        load(path)


def test_trailing_bytes(tmp_path):
    path = tmp_path / "w.safetensors"
    save({"a": np.arange(3, dtype=np.float32)}, path)
    path.write_bytes(path.read_bytes() + b"\x00" * 4)
    with pytest.raises(SafetensorsError, match="4 unexpected bytes after the last tensor"):
        load(path)


def test_invalid_json(tmp_path):
    path = _raw_file(tmp_path / "bad.safetensors", b'{"a": {"dtype": "F32", ')
    with pytest.raises(SafetensorsError, match=r"bad\.safetensors.*not valid JSON"):
        load(path)


def test_header_not_utf8(tmp_path):
    path = _raw_file(tmp_path / "bad.safetensors", b'{"\xff\xfe":1}')
    with pytest.raises(SafetensorsError, match="not valid UTF-8"):
        load(path)


def test_header_not_an_object(tmp_path):
    path = _raw_file(tmp_path / "bad.safetensors", b"[1, 2, 3]")
    with pytest.raises(SafetensorsError, match="must be a JSON object"):
        load(path)
    path = _raw_file(tmp_path / "bad.safetensors", {"a": [1, 2]})
    with pytest.raises(SafetensorsError, match="tensor 'a': entry must be an object"):
        load(path)


def test_duplicate_tensor_name(tmp_path):
    header = (b'{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},'
              b'"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}')
    path = _raw_file(tmp_path / "dup.safetensors", header, b"\x01\x02")
    with pytest.raises(SafetensorsError, match="duplicate key 'a'"):
        load(path)


def test_unknown_and_unsupported_dtypes(tmp_path):
    path = _raw_file(tmp_path / "bad.safetensors",
                     {"w": {"dtype": "F128", "shape": [1], "data_offsets": [0, 16]}}, bytes(16))
    with pytest.raises(SafetensorsError, match=r"tensor 'w': unknown dtype 'F128'"):
        load(path)
    path = _raw_file(tmp_path / "bad.safetensors",
                     {"w": {"dtype": "F8_E4M3", "shape": [2], "data_offsets": [0, 2]}}, bytes(2))
    with pytest.raises(SafetensorsError, match="tensor 'w': dtype F8_E4M3 has no NumPy"):
        load(path)


def test_shape_and_offsets_disagree(tmp_path):
    path = _raw_file(tmp_path / "bad.safetensors",
                     {"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 20]}}, bytes(20))
    with pytest.raises(SafetensorsError,
                       match=r"tensor 'w': shape \(2, 3\) of F32 needs 24 bytes.*span 20"):
        load(path)


def test_bad_shape_and_offset_values(tmp_path):
    bad_entries = [
        ({"dtype": "U8", "shape": [-1], "data_offsets": [0, 1]}, "shape must be a list"),
        ({"dtype": "U8", "shape": [1.5], "data_offsets": [0, 1]}, "shape must be a list"),
        ({"dtype": "U8", "shape": [1], "data_offsets": [1, 0]}, "data_offsets must be"),
        ({"dtype": "U8", "shape": [1], "data_offsets": [0]}, "data_offsets must be"),
        ({"dtype": "U8", "shape": [1]}, "entry lacks data_offsets"),
    ]
    for entry, message in bad_entries:
        path = _raw_file(tmp_path / "bad.safetensors", {"w": entry}, b"\x00")
        with pytest.raises(SafetensorsError, match=f"tensor 'w': {message}"):
            load(path)


def test_overlapping_and_gapped_offsets(tmp_path):
    safetensors_numpy = _reference()
    overlap = {"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},
               "b": {"dtype": "U8", "shape": [4], "data_offsets": [2, 6]}}
    path = _raw_file(tmp_path / "bad.safetensors", overlap, bytes(6))
    with pytest.raises(SafetensorsError, match="tensor 'b'.*overlaps tensor 'a'"):
        load(path)
    gap = {"a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]},
           "b": {"dtype": "U8", "shape": [2], "data_offsets": [4, 6]}}
    path = _raw_file(tmp_path / "bad.safetensors", gap, bytes(6))
    with pytest.raises(SafetensorsError, match="tensor 'b'.*leaves a gap after tensor 'a'"):
        load(path)
    with pytest.raises(_reference_error()):  # the reference is as strict
        safetensors_numpy.load_file(path)
    out_of_bounds = {"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}
    path = _raw_file(tmp_path / "bad.safetensors", out_of_bounds, bytes(8))
    with pytest.raises(SafetensorsError, match="truncated.*16 bytes.*only 8"):
        load(path)


def test_offsets_in_any_header_order_are_accepted(tmp_path):
    """The spec orders tensors by offset, not by header position."""
    header = {"late": {"dtype": "U8", "shape": [2], "data_offsets": [2, 4]},
              "early": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}}
    path = _raw_file(tmp_path / "w.safetensors", header, b"\x01\x02\x03\x04")
    loaded = load(path)
    assert loaded["early"].numpy().tolist() == [1, 2]
    assert loaded["late"].numpy().tolist() == [3, 4]


def test_bad_metadata_and_bool_bytes(tmp_path):
    path = _raw_file(tmp_path / "bad.safetensors", {"__metadata__": {"epoch": 3}})
    with pytest.raises(SafetensorsError, match="__metadata__.*str -> str"):
        load(path)
    path = _raw_file(tmp_path / "bad.safetensors",
                     {"m": {"dtype": "BOOL", "shape": [2], "data_offsets": [0, 2]}}, b"\x01\x07")
    with pytest.raises(SafetensorsError, match="tensor 'm': BOOL data holds bytes other than 0/1"):
        load(path)


def test_pytorch_pickle_checkpoints_are_recognised(tmp_path):
    torch = pytest.importorskip("torch")
    state = torch.nn.Linear(2, 2).state_dict()
    zip_path = tmp_path / "model.pt"
    torch.save(state, zip_path)
    with pytest.raises(SafetensorsError,
                       match=r"model\.pt.*PyTorch pickle/zip checkpoint.*never unpickles"):
        load(zip_path)
    legacy_path = tmp_path / "legacy.pt"
    torch.save(state, legacy_path, _use_new_zipfile_serialization=False)
    with pytest.raises(SafetensorsError, match=r"legacy\.pt.*PyTorch pickle/zip checkpoint"):
        load(legacy_path)


def test_missing_file(tmp_path):
    with pytest.raises(SafetensorsError, match="nope.safetensors.*cannot open"):
        load(tmp_path / "nope.safetensors")


# ---------------------------------------------------------------- bad input and atomic writes


@pytest.mark.parametrize("state, metadata, message", [
    ({1: np.zeros(1)}, None, "tensor names must be str"),
    ({"__metadata__": np.zeros(1)}, None, "reserved"),
    ({"w": np.array([object(), 1], dtype=object)}, None, "tensor 'w': dtype object.*object array"),
    ({"w": np.zeros(2, np.complex64)}, None, "tensor 'w': dtype complex64 cannot be stored"),
    ({"w": [1.0, 2.0]}, None, "tensor 'w': value is a builtins.list, not a Tensor or array"),
    ({"w": np.zeros(1)}, {"epoch": 3}, "metadata must map str -> str"),
    ([np.zeros(1)], None, "expected a dict"),
], ids=["int-key", "reserved-name", "object", "complex", "list", "metadata", "not-a-dict"])
def test_bad_input_is_refused_and_leaves_no_file(tmp_path, state, metadata, message):
    path = tmp_path / "w.safetensors"
    with pytest.raises(SafetensorsError, match=rf"w\.safetensors.*{message}"):
        save(state, path, metadata=metadata)
    assert _leftovers(tmp_path, keep=[]) == []


def test_failed_save_keeps_previous_file(tmp_path):
    path = tmp_path / "w.safetensors"
    save({"w": np.arange(3, dtype=np.float32)}, path)
    before = path.read_bytes()
    bad = {"w": np.zeros(3, np.float32), "z": np.array(["text", None], dtype=object)}
    with pytest.raises(SafetensorsError, match="tensor 'z'"):
        save(bad, path)
    assert path.read_bytes() == before
    assert _leftovers(tmp_path, keep=["w.safetensors"]) == []


@pytest.mark.parametrize("failing", ["replace", "fsync"])
def test_io_error_while_writing_cleans_up(tmp_path, monkeypatch, failing):
    path = tmp_path / "w.safetensors"
    save({"w": np.arange(3, dtype=np.float32)}, path)
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(st_module.os, failing, boom)
    with pytest.raises(OSError, match="No space left"):
        save({"w": np.ones(1000, np.float32)}, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert _leftovers(tmp_path, keep=["w.safetensors"]) == []


def test_new_file_has_umask_permissions_and_no_temp_files(tmp_path):
    path = tmp_path / "w.safetensors"
    save({"w": np.ones(2)}, path)
    assert _leftovers(tmp_path, keep=["w.safetensors"]) == []
    if os.name == "posix":
        umask = os.umask(0)
        os.umask(umask)
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask
