"""Read and write weight files in the safetensors format, with NumPy only.

A safetensors file is three parts laid end to end::

    [ N : 8 bytes, little-endian unsigned 64-bit ]
    [ header : N bytes of UTF-8 JSON, padded with spaces so that N % 8 == 0 ]
    [ data : the raw bytes of every tensor, little-endian, C order, no gaps ]

The header maps each tensor name to ``{"dtype": "F32", "shape": [3, 4], "data_offsets": [b, e]}``
where ``[b, e)`` is the tensor's byte range *inside the data part* (not the file), and may hold
one extra entry ``"__metadata__"``: a flat ``{str: str}`` dict of free text.

Nothing here unpickles or executes anything from the file: loading reads bytes and checks every
number in the header against the file size before using it, so a hostile file can at worst be
rejected. That is the reason minidl uses this format instead of ``pickle``.

The writer reproduces the reference implementation (the ``safetensors`` package) byte for byte:
tensors are laid out by descending dtype rank in the reference's ``Dtype`` enum (roughly "widest
element first", so every tensor starts at an offset aligned to its element size), ties broken by
name; the JSON is compact; the header is padded with spaces to a multiple of 8 bytes. The one thing
that cannot match is the order of keys inside ``__metadata__`` when it has two or more: the
reference keeps them in a Rust ``HashMap`` whose order is random per process, while minidl keeps the
caller's insertion order.
"""

from __future__ import annotations

import json
import os
import secrets
import struct
from collections import OrderedDict

import numpy as np

__all__ = ["SafetensorsError", "save", "load", "load_metadata"]


class SafetensorsError(ValueError):
    """A weight file could not be written or read; the message names the file and the tensor."""


# safetensors dtype code -> NumPy dtype (always little-endian in the file).
_CODE_TO_DTYPE = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U64": np.dtype("<u8"),
    "U32": np.dtype("<u4"),
    "U16": np.dtype("<u2"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}
# NumPy dtype (native order) -> code, for the writer.
_DTYPE_TO_CODE = {np.dtype(dt.newbyteorder("=")): code for code, dt in _CODE_TO_DTYPE.items()}

# Position of each code in the reference implementation's `Dtype` enum (Rust, derives Ord). The
# reference writer sorts tensors by this rank, *descending*, then by name; we do the same so files
# are byte-identical. Checked by experiment against safetensors 0.8 (see tests/io).
_REFERENCE_RANK = {
    code: rank
    for rank, code in enumerate(
        ["BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "I16", "U16", "F16", "BF16",
         "I32", "U32", "F32", "F64", "I64", "U64"]
    )
}

# Codes that exist in the format but have no NumPy dtype. BF16 is converted on read (below);
# the others are refused with a message saying so.
_UNSUPPORTED_CODES = {"F8_E5M2", "F8_E4M3", "F8_E8M0", "F4", "F6_E2M3", "F6_E3M2", "C64"}

# The reference refuses headers above 100 MB; so do we, before allocating anything that large.
_MAX_HEADER_SIZE = 100_000_000

_METADATA_KEY = "__metadata__"


# --------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------


def _tensor_class():
    """minidl's Tensor, imported late so that ``minidl/__init__`` may import this module early."""
    from minidl.tensor import Tensor

    return Tensor


def _as_array(name, value, where):
    """The host NumPy array behind one state-dict value (no copy when it is already one)."""
    try:
        tensor_cls = _tensor_class()
    except ImportError:  # the I/O functions still work on plain arrays without the core
        tensor_cls = ()
    if tensor_cls and isinstance(value, tensor_cls):
        # .data, not .numpy(): saving a Parameter that requires grad is fine, no graph is kept.
        array = value.data
        if not isinstance(array, np.ndarray):  # a CUDA tensor holds a CuPy array
            array = array.get()
        return array
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "__cuda_array_interface__") and hasattr(value, "get"):
        return value.get()  # a CuPy array: copy to host explicitly, np.asarray refuses
    if hasattr(value, "__array__"):
        try:
            return np.asarray(value)
        except Exception as exc:  # e.g. a torch tensor that requires grad
            raise SafetensorsError(
                f"{where}: tensor {name!r}: could not convert {type(value).__name__} to a "
                f"NumPy array ({exc})"
            ) from exc
    raise SafetensorsError(
        f"{where}: tensor {name!r}: value is a {type(value).__module__}.{type(value).__name__}, "
        "not a Tensor or array (only tensors can go in a weight file)"
    )


def _prepare(state_dict, metadata, where):
    """Check and convert everything before the file is touched.

    Returns the padded header bytes and the list of little-endian, C-contiguous arrays in file
    order.
    """
    if not hasattr(state_dict, "items"):
        raise SafetensorsError(
            f"{where}: expected a dict of name -> tensor, got {type(state_dict).__name__}"
        )
    entries = []
    for name, value in state_dict.items():
        if not isinstance(name, str):
            raise SafetensorsError(
                f"{where}: tensor names must be str, got {type(name).__name__} {name!r}"
            )
        if name == _METADATA_KEY:
            raise SafetensorsError(
                f"{where}: {_METADATA_KEY!r} is reserved by the format and cannot name a tensor"
            )
        array = _as_array(name, value, where)
        code = _DTYPE_TO_CODE.get(np.dtype(array.dtype).newbyteorder("="))
        if code is None:
            hint = ""
            if array.dtype.kind == "O":
                hint = " (an object array holds Python objects, not numbers)"
            raise SafetensorsError(
                f"{where}: tensor {name!r}: dtype {array.dtype} cannot be stored in safetensors"
                f"{hint}; supported: {', '.join(str(d) for d in _DTYPE_TO_CODE)}"
            )
        # One call fixes both layout (C order) and byte order (little-endian); it copies only
        # when one of them is wrong. (Not np.ascontiguousarray: it turns 0-d arrays into 1-d.)
        array = np.asarray(array, dtype=_CODE_TO_DTYPE[code], order="C")
        entries.append((name, code, array))

    if metadata is not None:
        if not hasattr(metadata, "items"):
            raise SafetensorsError(
                f"{where}: metadata must be a dict of str -> str, got {type(metadata).__name__}"
            )
        for key, text in metadata.items():
            if not isinstance(key, str) or not isinstance(text, str):
                raise SafetensorsError(
                    f"{where}: metadata must map str -> str; got {key!r}: {text!r} "
                    f"({type(key).__name__} -> {type(text).__name__}); encode other values as "
                    "text, e.g. with json.dumps"
                )

    # NOTE: the reference's order: descending dtype rank, then name. Python compares str by code
    # point, Rust by UTF-8 bytes; UTF-8 preserves code-point order, so the two sorts agree.
    entries.sort(key=lambda entry: (-_REFERENCE_RANK[entry[1]], entry[0]))

    header = {}
    if metadata is not None:
        header[_METADATA_KEY] = dict(metadata)
    offset = 0
    for name, code, array in entries:
        header[name] = {"dtype": code, "shape": list(array.shape),
                        "data_offsets": [offset, offset + array.nbytes]}
        offset += array.nbytes
    # Compact JSON, non-ASCII kept as UTF-8: the same text serde_json writes in the reference.
    try:
        header_bytes = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    except UnicodeEncodeError as exc:
        raise SafetensorsError(
            f"{where}: a tensor name or metadata string is not valid Unicode ({exc})"
        ) from exc
    # Pad with spaces (valid JSON whitespace) so the data part starts 8-byte aligned.
    header_bytes += b" " * (-len(header_bytes) % 8)
    return header_bytes, [array for _, _, array in entries]


def _fsync_directory(directory):
    """Make the rename itself durable. Not all platforms can open a directory (Windows cannot)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on a directory; the data is already safe
        pass
    finally:
        os.close(fd)


def _atomic_write(path, write_body, where):
    """Write a file so that readers see either the old file or the complete new one.

    ``write_body(file)`` writes the content into a temporary file in the target's directory
    (same file system, so the final ``os.replace`` is an atomic rename); the file is flushed and
    fsync-ed before the rename. On any error the temporary file is removed and ``path`` is left
    as it was.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    while True:
        tmp_path = os.path.join(directory, f".{base}.{secrets.token_hex(6)}.tmp")
        try:
            # O_EXCL: never reuse someone else's file; mode 0o666 lets the umask decide the
            # final permissions, as for a plain open().
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
            fd = os.open(tmp_path, flags, 0o666)
            break
        except FileExistsError:
            continue
        except OSError as exc:
            raise SafetensorsError(f"{where}: cannot write in {directory!r}: {exc}") from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            write_body(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        try:
            os.unlink(tmp_path)
        except OSError:
            pass
        raise
    _fsync_directory(directory)


def save(state_dict, path, metadata=None):
    """Write a dict of tensors to ``path`` in the safetensors format, atomically.

    The file is ``u64 N`` (little-endian) + ``N`` bytes of JSON header + the tensors' raw bytes:

    .. math::

        \\text{file} = \\underbrace{N}_{8\\,\\text{bytes}}\\;\\|\\;
        \\underbrace{\\text{JSON}}_{N\\,\\text{bytes},\\ N \\equiv 0 \\pmod 8}\\;\\|\\;
        t_1 \\| t_2 \\| \\dots,\\qquad |t_i| = \\text{itemsize}_i \\prod_k \\text{shape}_{i,k}

    and the header records each tensor's ``[begin, end)`` byte range within the data part.

    Parameters
    ----------
    state_dict : dict of str -> Tensor or array-like
        minidl Tensors, NumPy arrays or anything with ``__array__`` (a torch tensor, a CuPy array).
        Supported dtypes: float64/32/16, int64/32/16/8, uint64/32/16/8, bool. Non-contiguous or
        big-endian arrays are written in C order, little-endian.
    path : str or os.PathLike
        Target file. It is replaced only once the new file is complete and on disk.
    metadata : dict of str -> str, optional
        Free text stored under ``"__metadata__"`` (e.g. ``{"format": "pt"}``).

    Raises
    ------
    SafetensorsError
        For a non-str name, a value that is not an array, an unsupported dtype (object, complex,
        ...), metadata that is not ``str -> str``, or an I/O error while writing. Nothing is left
        behind and an existing ``path`` is untouched.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> from minidl.io import save, load
    >>> path = os.path.join(tempfile.mkdtemp(), "w.safetensors")
    >>> save({"weight": np.eye(2, dtype=np.float32)}, path, metadata={"format": "pt"})
    >>> load(path)["weight"].numpy().tolist()
    [[1.0, 0.0], [0.0, 1.0]]
    """
    where = f"minidl.io.save({os.fspath(path)!r})"
    header_bytes, arrays = _prepare(state_dict, metadata, where)

    def write_body(handle):
        handle.write(struct.pack("<Q", len(header_bytes)))
        handle.write(header_bytes)
        for array in arrays:
            if array.size:
                handle.write(array.reshape(-1).view(np.uint8).data)

    _atomic_write(path, write_body, where)


# --------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------


def _foreign_format_hint(head):
    """A sentence saying what the file looks like, when it is clearly not safetensors."""
    if head[:4] == b"PK\x03\x04":
        return ("it is a zip archive: this looks like a PyTorch pickle/zip checkpoint "
                "(torch.save); minidl never unpickles: save it with safetensors "
                "(safetensors.torch.save_file(model.state_dict(), path))")
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return ("it starts with a pickle opcode: this looks like a PyTorch pickle/zip checkpoint "
                "(torch.save); minidl never unpickles: save it with safetensors "
                "(safetensors.torch.save_file(model.state_dict(), path))")
    if head[:6] == b"\x93NUMPY":
        return "it is a NumPy .npy file, not safetensors"
    return None


def _unique_keys(pairs):
    """json object hook: a name given twice would silently shadow a tensor, so refuse it."""
    result = {}
    for key, value in pairs:
        if key in result:
            raise SafetensorsError(f"duplicate key {key!r} in the header")
        result[key] = value
    return result


def _is_count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _read_header(handle, where):
    """Parse and validate the header; returns ``(metadata, entries, data_start)``.

    ``entries`` is a list of ``(name, code, shape, begin, end)`` sorted by ``begin``, already
    checked to tile the data part exactly: no gap, no overlap, nothing past the end of the file.
    """
    file_size = os.fstat(handle.fileno()).st_size
    head = handle.read(8)
    if head[:4] == b"PK\x03\x04":
        raise SafetensorsError(f"{where}: not a safetensors file: {_foreign_format_hint(head)}")
    if len(head) < 8:
        raise SafetensorsError(
            f"{where}: file is {file_size} bytes, too short for the 8-byte header length "
            "(empty or truncated file?)"
        )
    (header_len,) = struct.unpack("<Q", head)
    if header_len > _MAX_HEADER_SIZE or 8 + header_len > file_size:
        hint = _foreign_format_hint(head)
        if hint:
            raise SafetensorsError(f"{where}: not a safetensors file: {hint}")
        if header_len > _MAX_HEADER_SIZE:
            raise SafetensorsError(
                f"{where}: header length {header_len} is above the {_MAX_HEADER_SIZE}-byte limit "
                "(corrupt file, or not a safetensors file)"
            )
        raise SafetensorsError(
            f"{where}: header length {header_len} is larger than the file "
            f"({file_size} bytes, so at most {file_size - 8} for the header): truncated or corrupt"
        )
    raw = handle.read(header_len)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        hint = _foreign_format_hint(head)
        raise SafetensorsError(
            f"{where}: " + (f"not a safetensors file: {hint}" if hint
                            else f"header is not valid UTF-8 ({exc})")
        ) from exc
    if not text.startswith("{"):
        hint = _foreign_format_hint(head)
        raise SafetensorsError(
            f"{where}: " + (f"not a safetensors file: {hint}" if hint
                            else f"header must be a JSON object starting with '{{', "
                                 f"it starts with {text[:20]!r}")
        )
    try:
        header = json.loads(text, object_pairs_hook=_unique_keys)
    except SafetensorsError as exc:
        raise SafetensorsError(f"{where}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise SafetensorsError(f"{where}: header is not valid JSON: {exc}") from exc
    if not isinstance(header, dict):
        raise SafetensorsError(
            f"{where}: header must be a JSON object, got a {type(header).__name__}"
        )

    metadata = header.pop(_METADATA_KEY, None)
    if metadata is not None and not (
        isinstance(metadata, dict)
        and all(isinstance(v, str) for v in metadata.values())
    ):
        raise SafetensorsError(f"{where}: '{_METADATA_KEY}' must be an object of str -> str")

    entries = []
    for name, info in header.items():
        def bad(problem, name=name):
            return SafetensorsError(f"{where}: tensor {name!r}: {problem}")

        if not isinstance(info, dict):
            raise bad(f"entry must be an object with dtype/shape/data_offsets, got {info!r}")
        missing = [k for k in ("dtype", "shape", "data_offsets") if k not in info]
        if missing:
            raise bad(f"entry lacks {', '.join(missing)}: {info!r}")
        code, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if code in _UNSUPPORTED_CODES:
            raise bad(f"dtype {code} has no NumPy equivalent; convert it to F32 before saving")
        if code not in _CODE_TO_DTYPE and code != "BF16":
            raise bad(f"unknown dtype {code!r}; known: {', '.join(_REFERENCE_RANK)}")
        if not (isinstance(shape, list) and all(_is_count(d) for d in shape)):
            raise bad(f"shape must be a list of non-negative ints, got {shape!r}")
        if not (isinstance(offsets, list) and len(offsets) == 2
                and all(_is_count(o) for o in offsets) and offsets[0] <= offsets[1]):
            raise bad(f"data_offsets must be [begin, end] with 0 <= begin <= end, got {offsets!r}")
        itemsize = 2 if code == "BF16" else _CODE_TO_DTYPE[code].itemsize
        nbytes = int(np.prod(shape, dtype=object)) * itemsize  # object: no int64 overflow
        begin, end = offsets
        if end - begin != nbytes:
            raise bad(
                f"shape {tuple(shape)} of {code} needs {nbytes} bytes but data_offsets "
                f"[{begin}, {end}] span {end - begin}"
            )
        entries.append((name, code, tuple(shape), begin, end))

    # The data part must be tiled exactly, as the reference requires: sorted by offset, each
    # tensor starts where the previous one ended.
    entries.sort(key=lambda entry: (entry[3], entry[4]))
    position, previous = 0, None
    for name, _code, _shape, begin, end in entries:
        if begin != position:
            what = "overlaps" if begin < position else "leaves a gap after"
            before = f"tensor {previous!r}" if previous is not None else "the start of the data"
            raise SafetensorsError(
                f"{where}: tensor {name!r}: data_offsets [{begin}, {end}] {what} {before} "
                f"(expected it to begin at byte {position})"
            )
        position, previous = end, name
    data_start = 8 + header_len
    available = file_size - data_start
    if position > available:
        raise SafetensorsError(
            f"{where}: file is truncated: the header describes {position} bytes of tensor data "
            f"but only {available} follow the header (tensor {previous!r} is cut off)"
        )
    if position < available:
        raise SafetensorsError(
            f"{where}: {available - position} unexpected bytes after the last tensor "
            "(corrupt file, or the header does not describe all the data)"
        )
    return metadata, entries, data_start


def _read_array(handle, where, name, code, shape, begin, end, data_start):
    """Copy one tensor from the file into a fresh, writable, aligned array."""
    if code == "BF16":
        # NOTE: NumPy has no bfloat16. BF16 is the top half of an IEEE float32, so shifting the
        # 16 bits up by 16 gives the *exact* float32 value. Loading BF16 therefore returns
        # float32 tensors (saving them again writes F32, twice the size).
        raw = np.empty(shape, dtype="<u2")
    else:
        raw = np.empty(shape, dtype=np.uint8 if code == "BOOL" else _CODE_TO_DTYPE[code])
    if raw.size:
        handle.seek(data_start + begin)
        count = handle.readinto(raw.reshape(-1).view(np.uint8))
        if count != end - begin:
            raise SafetensorsError(
                f"{where}: tensor {name!r}: file is truncated (read {count} of {end - begin} "
                "bytes)"
            )
    if code == "BF16":
        return (raw.astype(np.uint32) << 16).view(np.float32)
    if code == "BOOL":
        # A byte other than 0/1 is not a valid bool; NumPy would keep the odd byte around.
        if raw.size and raw.max() > 1:
            raise SafetensorsError(
                f"{where}: tensor {name!r}: BOOL data holds bytes other than 0/1"
            )
        return raw.view(np.bool_)
    if not raw.dtype.isnative:  # only on a big-endian machine
        raw = raw.astype(raw.dtype.newbyteorder("="))
    return raw


def _open_for_reading(path, where):
    try:
        return open(path, "rb")
    except OSError as exc:
        raise SafetensorsError(f"{where}: cannot open file: {exc}") from exc


def load_metadata(path):
    """The ``__metadata__`` dict of a safetensors file (``{}`` when it has none).

    Only the header is read and validated; the tensor data is not loaded.
    """
    where = f"minidl.io.load_metadata({os.fspath(path)!r})"
    with _open_for_reading(path, where) as handle:
        metadata, _, _ = _read_header(handle, where)
    return dict(metadata or {})


def _load_arrays(path, where):
    with _open_for_reading(path, where) as handle:
        metadata, entries, data_start = _read_header(handle, where)
        arrays = OrderedDict(
            (name, _read_array(handle, where, name, code, shape, begin, end, data_start))
            for name, code, shape, begin, end in entries
        )
    return arrays, dict(metadata or {})


def _wrap(arrays, device):
    tensor_cls = _tensor_class()
    tensors = OrderedDict()
    for name, array in arrays.items():
        tensor = tensor_cls._wrap(array)
        if device != "cpu":
            tensor = tensor.to(device)
        tensors[name] = tensor
    return tensors


def _target_device(device, map_location, where):
    """The device ``load`` puts tensors on: ``map_location`` (PyTorch's name) or ``device``.

    ``map_location`` may be a device string or object, or a dict mapping the saved device
    to a new one (``{"cuda": "cpu"}``); a safetensors file holds host bytes only, so a
    dict's ``"cpu"`` entry (else the ``"cuda"`` one, else "cpu") is used.
    """
    from minidl.backend import parse_device

    if map_location is not None:
        if callable(map_location):
            raise TypeError(
                f"{where}: map_location as a function is not supported (nothing is unpickled "
                "here); pass a device such as 'cpu' or 'cuda'"
            )
        if isinstance(map_location, dict):
            map_location = map_location.get("cpu", map_location.get("cuda", "cpu"))
        if device not in (None, "cpu") and parse_device(device, where) != parse_device(
            map_location, where
        ):
            raise ValueError(
                f"{where}: device={device!r} and map_location={map_location!r} disagree"
            )
        device = map_location
    return parse_device("cpu" if device is None else device, where)


def load(path, device="cpu", map_location=None):
    """Read a safetensors file into an ordered dict of name -> minidl Tensor.

    Every number in the header is checked before use: the header length against the file size,
    each tensor's ``shape`` and dtype against its ``data_offsets``
    (:math:`e - b = \\text{itemsize}\\prod_k \\text{shape}_k`), and the offsets must tile the data
    part exactly (no gap, no overlap, nothing missing or left over).

    Parameters
    ----------
    path : str or os.PathLike
        A file written by :func:`save`, ``safetensors.numpy.save_file``,
        ``safetensors.torch.save_file``, or any other conforming writer.
    device : str, default "cpu"
        Where the tensors go: ``"cpu"`` or ``"cuda"`` (copied to the GPU as they are read).
    map_location : str or dict, optional
        PyTorch's name for ``device`` (``torch.load(..., map_location="cpu")`` ports
        unchanged); a dict maps the saved device to a new one.  The file itself always holds
        host bytes: weights saved from the GPU are copied to the host when written.

    Returns
    -------
    collections.OrderedDict of str -> Tensor
        In file order. Each tensor owns a fresh, writable array (a copy, not a view of the file).
        ``BF16`` tensors come back as float32 with exactly the same values (NumPy has no
        bfloat16); the other dtypes come back unchanged.

    Raises
    ------
    SafetensorsError
        Naming the file and, where there is one, the tensor: file too short, header length past
        the end, invalid UTF-8 or JSON, header not an object, unknown dtype, shape/offset
        mismatch, overlapping or gapped offsets, truncated data, or a file that is not
        safetensors at all (a ``torch.save`` pickle/zip is recognised and named).

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> from minidl.io import save, load
    >>> path = os.path.join(tempfile.mkdtemp(), "w.safetensors")
    >>> save({"w": np.ones((2, 2)), "step": np.zeros((), np.int64)}, path)
    >>> [(name, t.shape, str(t.dtype)) for name, t in load(path).items()]
    [('step', (), 'int64'), ('w', (2, 2), 'float64')]
    """
    where = f"minidl.io.load({os.fspath(path)!r})"
    device = _target_device(device, map_location, where)  # a bad device fails before reading
    arrays, _ = _load_arrays(path, where)
    return _wrap(arrays, device)
