"""minicnn.weights: PyTorch / safetensors / npz weights read and written without torch, safely.

The fixtures under tests/fixtures/weights/ were written by real torch (make_fixtures.py
there); ``expected.npz`` holds the values torch itself gave.  Hostile and corrupt files
are made here, with the pickle opcodes written out by hand where torch's names are needed
(torch is not importable in CI).  Round trips through torch itself run only where it is.
"""
import json
import os
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from minicnn import checkpoint, models, weights
from minicnn.weights import UnsafePickleError, WeightsError

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "weights")
TORCH_FIXTURES = ["tiny_zip.pth", "tiny_legacy.pth", "wrapped.pth", "dtypes.pt",
                  "dtypes_legacy.pt", "views.pt", "views_legacy.pt"]


def fixture(name):
    return os.path.join(FIXTURES, name)


@pytest.fixture(scope="module")
def expected():
    with np.load(fixture("expected.npz")) as z:
        out = {}
        for key in z.files:
            name, tensor = key.split("/", 1)
            out.setdefault(name, {})[tensor] = z[key]
    return out


def assert_same_state(got, want, owned=True):
    assert set(got) == set(want), (sorted(got), sorted(want))
    for key, w in want.items():
        g = got[key]
        assert g.dtype == w.dtype and g.shape == w.shape, (key, g.dtype, g.shape, w.dtype, w.shape)
        np.testing.assert_array_equal(g, w, err_msg=key)
        if owned:
            assert g.flags.c_contiguous and g.flags.owndata and g.flags.writeable, (key, g.flags)


# ---------------------------------------------------------------- torch-written files
@pytest.mark.parametrize("name", TORCH_FIXTURES)
def test_torch_files_load_as_torch_gave_them(name, expected):
    state = weights.load(fixture(name))
    assert_same_state(state, expected[name])
    assert not any(k.endswith("num_batches_tracked") for k in state)


def test_tiny_net_keys_and_formats(expected):
    zipped, legacy = weights.info(fixture("tiny_zip.pth")), weights.info(fixture("tiny_legacy.pth"))
    assert (zipped["format"], legacy["format"]) == ("pytorch-zip", "pytorch-legacy")
    assert list(zipped["tensors"]) == ["conv.weight", "conv.bias", "bn.weight", "bn.bias",
                                       "bn.running_mean", "bn.running_var", "fc.weight", "fc.bias"]
    assert zipped["tensors"]["conv.weight"] == {"shape": (4, 3, 3, 3), "dtype": "float32"}
    assert zipped["total_params"] == 4 * 27 + 4 + 4 * 4 + 20 + 5 == legacy["total_params"]
    assert zipped["num_tensors"] == 8


def test_wrapped_checkpoint_gives_its_state_dict(expected):
    # {"epoch", "state_dict", "optimizer"}: the optimizer's tensors are not returned.
    state = weights.load(fixture("wrapped.pth"))
    assert set(state) == set(expected["tiny_zip.pth"])
    assert not np.array_equal(state["conv.weight"], expected["tiny_zip.pth"]["conv.weight"])  # one SGD step


def test_dtypes_and_views(expected):
    d = weights.load(fixture("dtypes.pt"))
    assert d["bf16"].dtype == np.float32 and d["u16"].dtype == np.uint16 and d["bool"].dtype == bool
    assert d["scalar"].shape == () and d["empty"].shape == (0, 3)
    v = weights.load(fixture("views_legacy.pt"))
    np.testing.assert_array_equal(v["transposed"], v["base"].T)
    np.testing.assert_array_equal(v["window"], v["base"][1:3, 2:5])
    v["window"][0, 0] = -1   # an owned copy: the other tensors of the storage do not change
    assert v["base"][1, 2] == 8


def test_whole_pickled_module_is_refused():
    with pytest.raises(UnsafePickleError, match=r"whole_module\.pt.*torch\.nn\.modules\.linear\.Linear"):
        weights.load(fixture("whole_module.pt"))


def test_torchscript_archive_is_refused():
    with pytest.raises(WeightsError, match="TorchScript"):
        weights.load(fixture("scripted.pt"))


# ----------------------------------------------------- hand-made torch-like files
def g(module, name):
    """GLOBAL opcode: the pickle's reference to ``module.name``."""
    return f"c{module}\n{name}\n".encode()


def v(value):
    """A plain value's opcodes (no PROTO, no STOP)."""
    return pickle.dumps(value, protocol=2)[2:-1]


def call(func, *args):
    return func + b"(" + b"".join(args) + b"tR"


def storage_id(key, numel, storage_type="FloatStorage", legacy=False):
    return (b"(" + v("storage") + g("torch", storage_type) + v(key) + v("cpu") + v(numel)
            + (v(None) if legacy else b"") + b"tQ")


def tensor(key, numel, size, stride=None, offset=0, legacy=False, storage_type="FloatStorage"):
    if stride is None:
        stride = tuple(int(np.prod(size[i + 1:])) for i in range(len(size)))
    hooks = call(g("collections", "OrderedDict"))
    return call(g("torch._utils", "_rebuild_tensor_v2"), storage_id(key, numel, storage_type, legacy),
                v(offset), v(tuple(size)), v(tuple(stride)), v(False), hooks)


def pickled_dict(items):
    return b"\x80\x02}(" + b"".join(v(k) + body for k, body in items) + b"u."


def write_zip(path, pkl, storages, prefix="archive", byteorder="little"):
    folder = f"{prefix}/" if prefix else ""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{folder}data.pkl", pkl)
        if byteorder is not None:
            z.writestr(f"{folder}byteorder", byteorder)
        for key, raw in storages.items():
            z.writestr(f"{folder}data/{key}", raw)
    return str(path)


def write_legacy(path, pkl, storages):
    with open(path, "wb") as f:
        for head in (0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": True}):
            pickle.dump(head, f, protocol=2)
        f.write(pkl)
        pickle.dump(sorted(storages), f, protocol=2)
        for key in sorted(storages):
            raw = storages[key]
            f.write(struct.pack("<q", len(raw) // 4) + raw)
    return str(path)


ARANGE = np.arange(6, dtype="<f4")


def test_hand_made_files_load(tmp_path):
    # The writers above make what torch makes: otherwise the failure tests below prove nothing.
    pkl = pickled_dict([("w", tensor("0", 6, (2, 3))), ("t", tensor("0", 6, (3, 2), (1, 3)))])
    for path in (write_zip(tmp_path / "a.pth", pkl, {"0": ARANGE.tobytes()}, prefix="some_name"),
                 write_zip(tmp_path / "b.pth", pkl, {"0": ARANGE.tobytes()}, byteorder=None)):
        state = weights.load(path)
        np.testing.assert_array_equal(state["w"], ARANGE.reshape(2, 3))
        np.testing.assert_array_equal(state["t"], ARANGE.reshape(2, 3).T)
    inner = pickled_dict([("w", tensor("0", 6, (6,)))])[2:-1]   # without PROTO and STOP
    wrapped = b"\x80\x02}(" + v("model") + inner + v("epoch") + v(1) + b"u."
    state = weights.load(write_zip(tmp_path / "m.pt", wrapped, {"0": ARANGE.tobytes()}))
    np.testing.assert_array_equal(state["w"], ARANGE)
    legacy = pickled_dict([("w", tensor("7", 6, (2, 3), legacy=True))])
    state = weights.load(write_legacy(tmp_path / "c.pt", legacy, {"7": ARANGE.tobytes()}))
    np.testing.assert_array_equal(state["w"], ARANGE.reshape(2, 3))


def test_shared_storage_is_read_once(tmp_path, monkeypatch):
    # 30 views of one storage (as a flattened-parameter checkpoint has): one read, not 30.
    from minicnn import torch_pickle
    pkl = pickled_dict([(f"w{i}", tensor("0", 6, (2,), offset=i % 5)) for i in range(30)])
    path = write_zip(tmp_path / "shared.pt", pkl, {"0": ARANGE.tobytes()})
    reads = []
    real = torch_pickle.read_member
    monkeypatch.setattr(torch_pickle, "read_member", lambda *a: reads.append(a[2]) or real(*a))
    state = weights.load(path)
    np.testing.assert_array_equal(state["w7"], ARANGE[2:4])
    assert len([r for r in reads if "data/" in str(getattr(r, "filename", r))]) == 1


def test_big_endian_archive(tmp_path, expected):
    # The storages of views.pt are all float32: swap their bytes and say "big".
    out = tmp_path / "big.pt"
    with zipfile.ZipFile(fixture("views.pt")) as src, zipfile.ZipFile(out, "w") as z:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("/byteorder"):
                data = b"big"
            elif "/data/" in info.filename:
                data = np.frombuffer(data, "<f4").astype(">f4").tobytes()
            z.writestr(info.filename, data)
    state = weights.load(out)
    assert_same_state(state, expected["views.pt"])
    assert state["base"].dtype.byteorder in "=|"


class Evil:
    """Unpickling this runs a shell command."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_reduce_payload_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"w": Evil(f"touch {marker}")}, protocol=2)
    pickle.loads(payload)   # proof that the payload is live: plain pickle runs it
    assert marker.exists()
    marker.unlink()
    files = [write_zip(tmp_path / "evil_zip.pth", payload, {}),
             write_legacy(tmp_path / "evil_legacy.pth", payload, {})]
    raw = tmp_path / "evil_raw.bin"
    raw.write_bytes(payload)
    files.append(str(raw))
    for path in files:
        refusal = f"{os.path.basename(path)}.*global {os.system.__module__}.system"   # posix.system
        with pytest.raises(UnsafePickleError, match=refusal):
            weights.load(path)
        assert not marker.exists(), path


@pytest.mark.parametrize("body", [
    call(g("builtins", "eval"), v("__import__('os').system('touch PWNED')")),
    call(g("subprocess", "Popen"), v(("touch", "PWNED"))),
    call(g("posix", "system"), v("touch PWNED")),
    # protocol 4's STACK_GLOBAL takes the names from the stack
    v("os") + v("system") + b"\x93" + v(("touch PWNED",)) + b"R",
    # hidden inside a tensor's arguments
    call(g("torch._utils", "_rebuild_tensor_v2"), storage_id("0", 6), call(g("builtins", "exec"), v("1")),
         v((6,)), v((1,)), v(False), call(g("collections", "OrderedDict"))),
    # allowlisted by torch, but bytearray(10 ** 12) would take a terabyte
    call(g("builtins", "bytearray"), v(10 ** 12)),
    # torch's own (but non-allowlisted) loading helpers
    call(g("torch.serialization", "load"), v("x")),
    call(g("torch._utils", "_rebuild_qtensor"), v(1)),
])
def test_hostile_globals_are_refused(tmp_path, body, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write_zip(tmp_path / "evil.pth", pickled_dict([("w", body)]), {"0": ARANGE.tobytes()})
    with pytest.raises(UnsafePickleError, match="refusing to load.*names the global"):
        weights.load(path)
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("body, problem", [
    # BUILD (set attributes) on an allowed stand-in: would let a file rewire the loader
    (g("torch._utils", "_rebuild_tensor_v2") + v({"call": 1}) + b"b", "refusing to set state"),
    # _rebuild_from_type_v2 may only wrap the rebuild functions
    (call(g("torch._tensor", "_rebuild_from_type_v2"), g("collections", "OrderedDict"),
          g("torch", "Tensor"), v(()), v({})), "_rebuild_from_type_v2"),
    # a pickled nn.Module class as a persistent id
    (b"(" + v("module") + v("x") + v(None) + v(None) + b"tQ", "nn.Module"),
    (b"(" + v("storage") + v("not a type") + v("0") + v("cpu") + v(6) + b"tQ", "bad storage id"),
    (call(g("torch", "Tensor"), v(1)), "may not be called"),
    (call(g("torch._utils", "_rebuild_tensor_v2"), storage_id("0", 6), v(-1), v((6,)), v((1,)),
          v(False), v(None)), "offset"),
    (call(g("torch._utils", "_rebuild_tensor_v2"), storage_id("0", 6), v(0), v((6, 1)), v((1,)),
          v(False), v(None)), "size"),
    (call(g("torch._utils", "_rebuild_tensor_v2"), storage_id("0", 6)), "_rebuild_tensor_v2"),
])
def test_malformed_pickles_are_refused(tmp_path, body, problem):
    path = write_zip(tmp_path / "bad.pth", pickled_dict([("w", body)]), {"0": ARANGE.tobytes()})
    with pytest.raises(WeightsError, match=f"bad\\.pth.*{problem}"):
        weights.load(path)


SIX = {"0": ARANGE.tobytes()}
MEMO_BOMB = b"Nr" + (2 ** 30).to_bytes(4, "little")   # None, memoized at index 2**30


def zip_file(w=None, storages=SIX, pkl=None, **kw):
    """A maker of a zip-format file whose state dict is {"w": <opcodes w>} (or pickle ``pkl``)."""
    return lambda path: write_zip(path, pkl or pickled_dict([("w", w)]), storages, **kw)


def legacy_file(w, storages=SIX):
    return lambda path: write_legacy(path, pickled_dict([("w", w)]), storages)


@pytest.mark.parametrize("make, problem", [
    (zip_file(tensor("0", 6, (2, 3)), {}), "missing"),
    (zip_file(tensor("0", 6, (2, 3)), {"0": ARANGE[:5].tobytes()}), "holds 20 bytes"),
    (zip_file(tensor("0", 6, (3, 3))), "needs 36 bytes"),
    (zip_file(tensor("0", 6, (2, 3), offset=1)), "at offset 1"),
    (zip_file(tensor("0", 6, (2, 3)), byteorder="middle"), "byteorder"),
    (zip_file(pkl=b"\x80\x02" + v([1, 2]) + b"."), "holds a list"),
    (zip_file(v(3)), "entry 'w' is a int"),
    (zip_file(pkl=b"\x80\x02}(K\x01" + tensor("0", 6, (6,)) + b"u."), "not a string"),
    (zip_file(pkl=b"\x80\x02}(" + v("w")), "corrupt"),
    (zip_file(pkl=pickled_dict([]), prefix=None), "one <archive>/data.pkl"),
    (zip_file(tensor("0", 6, (6,), storage_type="QInt8Storage")), "torch.QInt8Storage"),
    # sizes that would allocate terabytes if believed: refused before anything is allocated
    (zip_file(MEMO_BOMB), "memo index"),
    (legacy_file(MEMO_BOMB), "memo index"),
    (zip_file(tensor("0", 10 ** 15, (6,))), "holds 24 bytes, its tensors' storage needs 4000000000000000"),
    (zip_file(tensor("0", 6, (10 ** 12, 10 ** 12))), "needs 4" + "0" * 24 + " bytes"),
    (zip_file(tensor("0", 6, (0, 2 ** 63))), "too large"),
    (legacy_file(tensor("0", 10 ** 15, (6,), legacy=True)), "truncated or its size record is wrong"),
    (legacy_file(tensor("0", 6, (6,), legacy=True), {**SIX, "1": ARANGE.tobytes()}), "key list does not match"),
    (legacy_file(tensor("0", 6, (6,), legacy=True), {"0": ARANGE[:5].tobytes()}), "truncated"),
    (legacy_file(tensor("0", 6, (6,), legacy=False)), "5 items"),
])
def test_broken_torch_files(tmp_path, make, problem):
    path = make(tmp_path / "broken.pth")
    with pytest.raises(WeightsError, match=f"broken\\.pth.*{problem}"):
        weights.load(path)


@pytest.mark.parametrize("name", ["tiny_zip.pth", "tiny_legacy.pth"])
@pytest.mark.parametrize("keep", [0.0, 0.3, 0.7, 0.95])
def test_truncated_torch_files(tmp_path, name, keep):
    data = Path(fixture(name)).read_bytes()
    path = tmp_path / name
    path.write_bytes(data[:int(len(data) * keep)])
    with pytest.raises(WeightsError, match=name):
        weights.load(path)


def test_missing_file_and_unknown_extension(tmp_path):
    with pytest.raises(WeightsError, match="does not exist"):
        weights.load(tmp_path / "nope.pth")
    (tmp_path / "w.h5").write_bytes(b"x")
    with pytest.raises(WeightsError, match=r"expected a file ending in \.pth"):
        weights.load(tmp_path / "w.h5")


# ------------------------------------------------------------------- safetensors
def test_reference_safetensors_file(expected):
    state, metadata = weights.read_safetensors(fixture("tiny.safetensors"))
    assert metadata == {"format": "pt"}
    assert_same_state(state, expected["tiny.safetensors"])
    assert weights.info(fixture("tiny.safetensors"))["format"] == "safetensors"


def sample_state(rng=0):
    rng = np.random.default_rng(rng)
    return {"conv.weight": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
            "conv.bias": rng.standard_normal(4).astype(np.float32),
            "h": rng.standard_normal((2, 5)).astype(np.float16),
            "d": rng.standard_normal(3),
            "steps": np.arange(3, dtype=np.int64), "b": np.array([True, False]),
            "u": np.array([255], np.uint8), "scalar": np.float32(1.5),
            "empty": np.zeros((0, 4), np.float32),
            "file": np.ones(1, np.int32), "allow_pickle": np.ones(1, np.int8)}


@pytest.mark.parametrize("ext", [".safetensors", ".npz"])
def test_save_then_load(tmp_path, ext):
    state = sample_state()
    path = weights.save(state, tmp_path / f"w{ext}")
    back = weights.load(path)
    assert_same_state(back, {k: np.asarray(a) for k, a in state.items()})


def test_saved_safetensors_read_by_reference_package(tmp_path):
    st_numpy = pytest.importorskip("safetensors.numpy")
    state = {k: np.asarray(a) for k, a in sample_state(1).items()}
    weights.save(state, tmp_path / "w.safetensors", metadata={"format": "pt"})
    ref = st_numpy.load_file(str(tmp_path / "w.safetensors"))
    assert_same_state(ref, state, owned=False)
    # ... and files the reference writes read here
    st_numpy.save_file(state, str(tmp_path / "ref.safetensors"))
    assert_same_state(weights.load(tmp_path / "ref.safetensors"), ref)


def test_saved_safetensors_are_aligned(tmp_path):
    weights.save(sample_state(), tmp_path / "w.safetensors")
    raw = (tmp_path / "w.safetensors").read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    assert n % 8 == 0
    header = json.loads(raw[8:8 + n])
    for name, spec in header.items():
        itemsize = np.dtype(weights.SAFETENSORS_DTYPES[spec["dtype"]]).itemsize
        assert spec["data_offsets"][0] % itemsize == 0, name


def safetensors_file(path, header, data, length=None):
    text = json.dumps(header).encode() if not isinstance(header, bytes) else header
    path.write_bytes(struct.pack("<Q", len(text) if length is None else length) + text + data)
    return path


F32x2 = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}


@pytest.mark.parametrize("header, data, length, problem", [
    ({"a": F32x2}, bytes(8), 2 ** 63, "header length"),
    ({"a": F32x2}, bytes(8), 10 ** 6, "header length"),
    (b"{not json", b"", None, "not valid JSON"),
    (b"[1, 2]", b"", None, "a list"),
    (b'{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "a": {"dtype": "F32", '
     b'"shape": [1], "data_offsets": [0, 4]}}', bytes(4), None, "duplicate"),
    ({"a": {**F32x2, "data_offsets": [0, 16]}}, bytes(8), None, "needs 8 bytes"),
    ({"a": {**F32x2, "data_offsets": [8, 16]}}, bytes(8), None, "starts at byte 8, expected 0"),
    ({"a": F32x2, "b": F32x2}, bytes(16), None, "overlapping"),
    ({"a": F32x2, "b": {**F32x2, "data_offsets": [12, 20]}}, bytes(20), None, "a gap"),
    ({"a": F32x2}, bytes(4), None, "truncated"),
    ({"a": F32x2}, bytes(12), None, "trailing bytes"),
    ({"a": {**F32x2, "data_offsets": [4, 0]}}, bytes(8), None, "begin <= end"),
    ({"a": {**F32x2, "dtype": "F8_E4M3"}}, bytes(8), None, "unsupported dtype"),
    ({"a": {**F32x2, "dtype": ["F32"]}}, bytes(8), None, "unsupported dtype"),
    ({"a": {**F32x2, "shape": [-2]}}, bytes(8), None, "shape"),
    ({"a": {**F32x2, "shape": [0, 10 ** 30], "data_offsets": [0, 0]}}, b"", None, "too large"),
    ({"a": {**F32x2, "shape": [2.0]}}, bytes(8), None, "shape"),
    ({"a": {"dtype": "F32", "shape": [2]}}, bytes(8), None, "expected"),
    ({"__metadata__": {"x": 1}, "a": F32x2}, bytes(8), None, "__metadata__"),
])
def test_lying_safetensors_headers(tmp_path, header, data, length, problem):
    path = safetensors_file(tmp_path / "lie.safetensors", header, data, length)
    with pytest.raises(WeightsError, match=f"lie\\.safetensors.*{problem}"):
        weights.load(path)


def test_short_safetensors_file(tmp_path):
    (tmp_path / "s.safetensors").write_bytes(b"\x01\x02")
    with pytest.raises(WeightsError, match="too short"):
        weights.load(tmp_path / "s.safetensors")


# ------------------------------------------------------------------------- npz
def test_minicnn_checkpoint_gives_model_state(tmp_path):
    model = models.create("lenet5")
    path = checkpoint.save(tmp_path / "ckpt.npz", model, epoch=2)
    assert_same_state(weights.load(path), model.state_dict())
    assert weights.info(path)["format"] == "minicnn-checkpoint"


def test_npz_refusals(tmp_path):
    np.savez(tmp_path / "obj.npz", a=np.array([{"x": 1}], dtype=object))
    with pytest.raises(WeightsError, match="obj.npz"):
        weights.load(tmp_path / "obj.npz")
    np.savez(tmp_path / "text.npz", a=np.array(["x"]))
    with pytest.raises(WeightsError, match="text.npz.*expected numbers"):
        weights.load(tmp_path / "text.npz")
    (tmp_path / "cut.npz").write_bytes(Path(fixture("expected.npz")).read_bytes()[:500])
    with pytest.raises(WeightsError, match="cut.npz"):
        weights.load(tmp_path / "cut.npz")


# ------------------------------------------------------------------------ save
def test_save_refusals(tmp_path):
    state = sample_state()
    for bad in ("w.pth", "w.pt", "w.json"):
        with pytest.raises(WeightsError, match="weights.save"):
            weights.save(state, tmp_path / bad)
    with pytest.raises(WeightsError, match="model.state_dict"):
        weights.save(models.create("lenet5"), tmp_path / "w.npz")
    with pytest.raises(WeightsError, match="'s'.*dtype"):
        weights.save({"s": np.array(["text"])}, tmp_path / "w.npz")
    with pytest.raises(WeightsError, match="complex128"):
        weights.save({"c": np.ones(2, np.complex128)}, tmp_path / "w.safetensors")
    with pytest.raises(WeightsError, match="metadata"):
        weights.save(state, tmp_path / "w.safetensors", metadata={"a": 1})
    assert os.listdir(tmp_path) == []


def test_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "w.safetensors"
    weights.save({"a": np.ones(3, np.float32)}, path)
    before = path.read_bytes()

    def crash(f, arrays, metadata=None):
        f.write(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(weights, "_write_safetensors", crash)
    with pytest.raises(KeyboardInterrupt):
        weights.save({"b": np.zeros(5, np.float32)}, path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["w.safetensors"]


# -------------------------------------------------------------------- matching
def test_match_models():
    state = models.create("resnet20").state_dict()
    candidates = ["lenet5", "resnet20", "resnet32", "small_cnn"]
    assert weights.match_models(state, names=candidates) == ["resnet20"]
    seven_classes = models.create("lenet5", num_classes=7).state_dict()
    assert weights.match_models(seven_classes, names=candidates) == ["lenet5"]
    del state["fc.bias"]
    assert weights.match_models(state, names=candidates) == []
    assert weights.match_models(fixture("tiny_zip.pth"), names=candidates) == []


def test_fits_allows_one_class_count_only():
    model = {"conv.weight": (8, 3, 3, 3), "fc.weight": (10, 8), "fc.bias": (10,)}
    assert weights.fits(dict(model), model)
    assert weights.fits({**model, "fc.weight": (4, 8), "fc.bias": (4,)}, model)
    assert not weights.fits({**model, "fc.weight": (4, 8), "fc.bias": (5,)}, model)
    assert not weights.fits({**model, "fc.weight": (10, 9)}, model)
    assert not weights.fits({**model, "conv.weight": (8, 3, 3)}, model)
    assert not weights.fits({**model, "extra": (1,)}, model)


def test_torch_weights_load_into_a_minicnn_model(tmp_path):
    # The point of it all: a state dict from elsewhere drives a minicnn model.
    model = models.create("lenet5")
    weights.save(model.state_dict(), tmp_path / "lenet.safetensors")
    other = models.create("lenet5", rng=1)
    key = "features.0.weight"
    assert not np.array_equal(other.state_dict()[key], model.state_dict()[key])
    other.load_state_dict(weights.load(tmp_path / "lenet.safetensors"))
    assert_same_state(other.state_dict(), model.state_dict())


# ------------------------------------------------- with torch itself (not in CI)
def random_torch_state(torch):
    gen = torch.Generator().manual_seed(0)
    base = torch.randn(5, 7, generator=gen)
    return {"w": torch.randn(3, 4, 2, generator=gen), "h": torch.randn(4, generator=gen).half(),
            "bf": torch.randn(6, generator=gen).bfloat16(), "d": torch.randn(2, 2, dtype=torch.float64),
            "i": torch.randint(-9, 9, (4,), generator=gen), "b": torch.rand(3, generator=gen) > 0.5,
            "t": base.t(), "slice": base[1:4, ::2], "base": base,
            "p": torch.nn.Parameter(torch.randn(2, generator=gen))}


@pytest.mark.parametrize("zip_format", [True, False])
def test_torch_save_round_trip(tmp_path, zip_format):
    torch = pytest.importorskip("torch")
    state = random_torch_state(torch)
    torch.save(state, tmp_path / "r.pth", _use_new_zipfile_serialization=zip_format)
    got = weights.load(tmp_path / "r.pth")
    want = {k: (t.float() if t.dtype == torch.bfloat16 else t).detach().numpy() for k, t in state.items()}
    assert_same_state(got, want)


def test_saved_safetensors_load_into_torch(tmp_path):
    torch = pytest.importorskip("torch")
    st_torch = pytest.importorskip("safetensors.torch")
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(),
                              torch.nn.Linear(4 * 4 * 4, 2))
    state = {k: np.random.default_rng(0).standard_normal(tuple(t.shape)).astype(np.float32)
             for k, t in net.state_dict().items() if t.is_floating_point()}
    state["1.running_var"] = np.abs(state["1.running_var"])
    state["1.num_batches_tracked"] = np.array(3, np.int64)
    weights.save(state, tmp_path / "w.safetensors")
    loaded = st_torch.load_file(str(tmp_path / "w.safetensors"))
    net.load_state_dict(loaded)
    for k, t in net.state_dict().items():
        np.testing.assert_array_equal(t.numpy(), state[k])
    assert_same_state(weights.load(tmp_path / "w.safetensors"),
                      {k: v.numpy() for k, v in loaded.items() if "num_batches" not in k})


def test_io_helpers_match_torch_layout():
    # to_array is what every reader ends in: non-contiguous views come back owned and contiguous.
    raw = np.arange(12, dtype="<i8").tobytes()
    a = weights.to_array(raw, "int64", (3, 2), (1, 3), offset=0)
    np.testing.assert_array_equal(a, np.arange(6).reshape(2, 3).T)
    with pytest.raises(ValueError, match="needs 112 bytes"):
        weights.to_array(raw, "int64", (2, 2), (6, 1), offset=6)
    assert weights.to_array(b"", "float32", (0, 5)).shape == (0, 5)


# ------------------------------------------------------------------- damage
def damaged(data, rng):
    data = bytearray(data)
    for _ in range(rng.integers(1, 4)):
        i = int(rng.integers(len(data)))
        if rng.random() < 0.7:
            data[i] = int(rng.integers(256))
        else:
            del data[i:i + int(rng.integers(1, 16))]
    return bytes(data)


@pytest.mark.parametrize("name", TORCH_FIXTURES + ["tiny.safetensors", "expected.npz"])
def test_damaged_files_raise_only_weights_error(tmp_path, name):
    # Flipped and deleted bytes anywhere -- zip headers, the pickle, storages, the JSON
    # header: the file loads (the damage hit raw tensor bytes) or WeightsError, nothing else.
    rng = np.random.default_rng(sum(map(ord, name)))
    data = Path(fixture(name)).read_bytes()
    path = tmp_path / f"damaged{os.path.splitext(name)[1]}"
    for _ in range(100):
        path.write_bytes(damaged(data, rng))
        try:
            weights.load(path)
        except WeightsError:
            pass


@pytest.mark.parametrize("name", ["tiny_zip.pth", "dtypes.pt", "views.pt", "wrapped.pth"])
def test_damaged_pickles_in_valid_zips(tmp_path, name):
    # The zip's CRCs would catch most damage above before the pickle is read: here the
    # damaged data.pkl is zipped again, so the unpickler itself meets the damage.
    rng = np.random.default_rng(sum(map(ord, name)))
    with zipfile.ZipFile(fixture(name)) as z:
        members = [(info.filename, z.read(info)) for info in z.infolist()]
    for i in range(100):
        path = tmp_path / f"d{i}.pt"
        with zipfile.ZipFile(path, "w") as z:
            for member, data in members:
                z.writestr(member, damaged(data, rng) if member.endswith("data.pkl") else data)
        try:
            weights.load(path)
        except WeightsError:
            pass


# ------------------------------------------------------------------ the command line
def test_cli_weights_info_and_convert(tmp_path, capsys):
    from minicnn import cli, models
    model = models.create("lenet5", rng=0)
    src = tmp_path / "l5.safetensors"
    weights.save(model.state_dict(), src)
    assert cli.main(["weights", "info", str(src)]) == 0
    out = capsys.readouterr().out
    assert "safetensors, 10 tensors, 61,706 values" in out
    assert "features.0.weight    float32  6x1x5x5" in out
    assert out.rstrip().endswith("fits: lenet5")
    dst = tmp_path / "l5.npz"
    assert cli.main(["weights", "convert", str(src), str(dst)]) == 0
    back = weights.load(dst)
    assert list(back) == list(model.state_dict())
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(back[k], v)


def test_cli_weights_refuses_hostile_and_incomplete_calls(tmp_path, capsys):
    from minicnn import cli
    assert cli.main(["weights", "info", os.path.join(FIXTURES, "whole_module.pt")]) == 2
    assert "refusing to load" in capsys.readouterr().err
    assert cli.main(["weights", "convert", os.path.join(FIXTURES, "tiny.safetensors")]) == 2
    assert "expected IN and OUT" in capsys.readouterr().err
