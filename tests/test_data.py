"""minicnn.data: CIFAR-10 pickles (and malicious ones), MNIST idx, download, sample, loader."""
import gzip
import hashlib
import http.server
import io
import json
import os
import pickle
import struct
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minicnn import data
from minicnn.data import cifar, download

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "cifar-10-batches-py-sample"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"shared CIFAR-10 sample absent ({SHARED})")


# ---------------------------------------------------------------- tiny CIFAR-10 written by the tests

def fake_batch(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
    y = rng.integers(0, 10, size=n)
    return x, y


class Py2Pickler(pickle._Pickler):
    """Writes pickles as Python 2 did for the official files: protocol 2, bytes as BINSTRING.

    (Python 3 writes bytes at protocol 2 as a call to _codecs.encode, which the restricted
    unpickler rightly refuses; the real files never contain it.)
    """
    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_bytes(self, obj):
        n = len(obj)
        if n < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([n]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", n) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_bytes


def py2_dumps(obj):
    buf = io.BytesIO()
    Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


def write_batch(path, x, y, **extra):
    d = {b"batch_label": b"testing", b"labels": [int(v) for v in y],
         b"data": x.reshape(len(x), 3072)}
    d.update(extra)
    Path(path).write_bytes(py2_dumps(d))


def write_cifar(root, n=4):
    """A CIFAR-10 python directory with n records per batch; returns the arrays written."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    xs, ys = [], []
    for i, name in enumerate(cifar.TRAIN_FILES + (cifar.TEST_FILE,)):
        x, y = fake_batch(n, seed=i)
        write_batch(root / name, x, y)
        xs.append(x)
        ys.append(y)
    meta = {b"num_cases_per_batch": n, b"label_names": [c.encode() for c in cifar.CLASSES],
            b"num_vis": 3072}
    (root / cifar.META_FILE).write_bytes(py2_dumps(meta))
    return np.concatenate(xs[:5]), np.concatenate(ys[:5]), xs[5], ys[5]


def test_load_cifar10_reads_what_was_written(tmp_path):
    expected = write_cifar(tmp_path, n=4)
    got = data.load_cifar10(tmp_path)
    for e, g in zip(expected, got):
        np.testing.assert_array_equal(g, e)
    assert got[0].dtype == np.uint8 and got[0].shape == (20, 3, 32, 32)
    assert got[1].dtype == np.int64 and got[3].shape == (4,)
    assert data.load_cifar10_meta(tmp_path) == data.CIFAR10_CLASSES


def test_record_layout_is_channel_planes(tmp_path):
    # A row is 1024 red, 1024 green, 1024 blue values: channel c must come from plane c.
    row = np.repeat(np.array([10, 20, 30], np.uint8), 1024)[None]
    write_cifar(tmp_path, n=1)
    (tmp_path / "test_batch").write_bytes(py2_dumps({b"data": row, b"labels": [7]}))
    x_test, y_test = data.load_cifar10(tmp_path)[2:]
    assert x_test[0, :, 5, 9].tolist() == [10, 20, 30] and y_test.tolist() == [7]


def test_numpy1_pickles_are_admitted(tmp_path):
    # The official files name numpy.core.multiarray._reconstruct (NumPy 1.x); rewrite ours so.
    x, y = fake_batch(3, seed=9)
    raw = py2_dumps({b"data": x.reshape(3, -1), b"labels": list(map(int, y))})
    for new in (b"numpy._core.multiarray", b"numpy.core.multiarray"):
        for old in (b"numpy._core.multiarray", b"numpy.core.multiarray"):
            raw = raw.replace(b"c" + old + b"\n", b"c" + new + b"\n")
        assert new in raw
        (tmp_path / "b").write_bytes(raw)
        gx, gy = cifar.load_batch(tmp_path / "b")
        np.testing.assert_array_equal(gx, x)
        np.testing.assert_array_equal(gy, y)
    # A batch re-pickled by Python 3 (protocol 4, str keys) reads the same.
    (tmp_path / "b").write_bytes(pickle.dumps({"data": x.reshape(3, -1), "labels": y.tolist()}, protocol=4))
    np.testing.assert_array_equal(cifar.load_batch(tmp_path / "b")[0], x)


class _SystemPayload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)


class _OpenPayload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


@pytest.mark.parametrize("payload", [_SystemPayload, _OpenPayload])
def test_malicious_pickle_raises_and_never_runs(tmp_path, payload):
    root = tmp_path / "cifar"
    write_cifar(root, n=2)
    marker = tmp_path / "pwned"
    evil = py2_dumps({b"data": payload(marker), b"labels": [0, 1]})
    (root / "data_batch_3").write_bytes(evil)
    with pytest.raises(ValueError, match=r"data_batch_3.*refusing to load global"):
        data.load_cifar10(root)
    assert not marker.exists()
    # The payload is live: an ordinary unpickler would have run it.
    if payload is _OpenPayload:
        pickle.loads(evil, encoding="bytes")[b"data"].close()
        assert marker.exists()


def test_missing_file_is_named(tmp_path):
    write_cifar(tmp_path, n=2)
    (tmp_path / "data_batch_4").unlink()
    with pytest.raises(ValueError, match="missing data_batch_4"):
        data.load_cifar10(tmp_path)
    with pytest.raises(ValueError, match="not a directory"):
        data.load_cifar10(tmp_path / "nowhere")


@pytest.mark.parametrize("mutate, message", [
    (lambda x, y: ({b"data": x.reshape(len(x), -1)[:, :3000], b"labels": y}), r"\(n, 3072\)"),
    (lambda x, y: ({b"data": x.reshape(len(x), -1).astype(np.float32), b"labels": y}), "uint8"),
    (lambda x, y: ({b"data": x.reshape(len(x), -1), b"labels": y[:-1]}), "labels"),
    (lambda x, y: ({b"data": x.reshape(len(x), -1), b"labels": [10] * len(y)}), "0..9"),
    (lambda x, y: ({b"labels": y}), "'data'"),
    (lambda x, y: ([x, y]), "dict"),
])
def test_corrupt_records_are_reported(tmp_path, mutate, message):
    write_cifar(tmp_path, n=3)
    x, y = fake_batch(3, seed=1)
    (tmp_path / "data_batch_2").write_bytes(py2_dumps(mutate(x, [int(v) for v in y])))
    with pytest.raises(ValueError, match=message):
        data.load_cifar10(tmp_path)


def test_truncated_pickle_is_reported(tmp_path):
    write_cifar(tmp_path, n=3)
    raw = (tmp_path / "test_batch").read_bytes()
    (tmp_path / "test_batch").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="test_batch.*corrupt"):
        data.load_cifar10(tmp_path)


@needs_shared
def test_shared_sample_is_real_cifar10():
    x_train, y_train, x_test, y_test = data.load_cifar10(SHARED)
    assert x_train.shape == (5000, 3, 32, 32) and x_test.shape == (1000, 3, 32, 32)
    assert x_train.dtype == np.uint8 and y_train.dtype == np.int64
    # Well-known facts of the official files: the first labels of data_batch_1 and
    # test_batch, and the RGB of the top-left pixel of the first training image.
    assert y_train[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
    assert y_test[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
    assert x_train[0, :, 0, 0].tolist() == [59, 62, 63]
    assert set(np.unique(y_train)) == set(range(10))
    assert data.load_cifar10_meta(SHARED) == data.CIFAR10_CLASSES


# ---------------------------------------------------------------- the shipped sample

def test_sample_is_balanced_and_small():
    x_train, y_train, x_test, y_test = data.load_sample()
    assert x_train.dtype == np.uint8 and x_train.shape[1:] == (3, 32, 32)
    assert x_test.dtype == np.uint8 and x_test.shape[1:] == (3, 32, 32)
    assert y_train.dtype == np.int64 and y_test.dtype == np.int64
    assert len(x_train) == len(y_train) >= 1000 and len(x_test) == len(y_test) >= 200
    assert np.bincount(y_train).tolist() == [len(y_train) // 10] * 10
    assert np.bincount(y_test).tolist() == [len(y_test) // 10] * 10
    assert data.sample_classes() == data.CIFAR10_CLASSES
    size = (Path(data.__file__).parent / data.SAMPLE_FILE).stat().st_size
    assert size < 4.2e6
    with np.load(Path(data.__file__).parent / data.SAMPLE_FILE, allow_pickle=False) as z:
        assert all(z[k].dtype != object for k in z.files)


@needs_shared
def test_sample_is_taken_from_the_shared_sample():
    x_train, y_train, x_test, y_test = data.load_cifar10(SHARED)
    with np.load(Path(data.__file__).parent / data.SAMPLE_FILE, allow_pickle=False) as z:
        i_train, i_test = z["train_index"], z["test_index"]
    s = data.load_sample()
    np.testing.assert_array_equal(s[0], x_train[i_train])
    np.testing.assert_array_equal(s[1], y_train[i_train])
    np.testing.assert_array_equal(s[2], x_test[i_test])
    np.testing.assert_array_equal(s[3], y_test[i_test])


# ---------------------------------------------------------------- MNIST idx

def idx_bytes(a):
    header = bytes([0, 0, 0x08, a.ndim]) + np.asarray(a.shape, ">u4").tobytes()
    return header + a.astype(np.uint8).tobytes()


def write_mnist(root, n_train=5, n_test=3, gz=("train-images-idx3-ubyte", "t10k-labels-idx1-ubyte")):
    rng = np.random.default_rng(3)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test),
    }
    for name, a in arrays.items():
        raw = idx_bytes(a)
        if name in gz:
            (root / (name + ".gz")).write_bytes(gzip.compress(raw))
        else:
            (root / name).write_bytes(raw)
    return arrays


def test_load_mnist_plain_and_gzipped(tmp_path):
    a = write_mnist(tmp_path)
    x_train, y_train, x_test, y_test = data.load_mnist(tmp_path)
    assert x_train.dtype == np.uint8 and x_train.shape == (5, 1, 28, 28)
    assert y_train.dtype == np.int64 and x_test.shape == (3, 1, 28, 28)
    np.testing.assert_array_equal(x_train[:, 0], a["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(y_train, a["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(x_test[:, 0], a["t10k-images-idx3-ubyte"])
    np.testing.assert_array_equal(y_test, a["t10k-labels-idx1-ubyte"])


def test_load_by_name_reads_each_dataset(tmp_path):
    cifar_dir, mnist_dir = tmp_path / "c", tmp_path / "m"
    expected = write_cifar(cifar_dir, n=4)
    mnist_dir.mkdir()
    write_mnist(mnist_dir)
    for got, want in zip(data.load("cifar10", cifar_dir), expected):
        np.testing.assert_array_equal(got, want)
    for got, want in zip(data.load("mnist", mnist_dir), data.load_mnist(mnist_dir)):
        np.testing.assert_array_equal(got, want)
    for got, want in zip(data.load("sample"), data.load_sample()):
        np.testing.assert_array_equal(got, want)
    x_train, y_train, x_test, y_test = data.load("cifar10", cifar_dir, limit=3)
    assert len(x_train) == len(y_train) == len(x_test) == len(y_test) == 3
    np.testing.assert_array_equal(x_train, expected[0][:3])
    assert data.describe("cifar10", cifar_dir) == f"CIFAR-10 from {cifar_dir}"
    assert data.describe("sample") == "the CIFAR-10 sample shipped with minicnn"


@pytest.mark.parametrize("args, kwargs, message", [
    (("imagenet",), {}, "expected a dataset name in sample, cifar10, mnist"),
    (("mnist",), {}, "'mnist' needs data_dir"),
    (("cifar10",), {}, "'cifar10' needs data_dir"),
    (("sample", "somewhere"), {}, "takes no data_dir"),
    (("sample",), {"limit": 0}, "limit >= 1"),
    (("sample",), {"limit": 2.5}, "limit"),
])
def test_load_by_name_rejects(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        data.load(*args, **kwargs)


def test_class_names():
    assert data.class_names("cifar10", 10) == data.CIFAR10_CLASSES == data.class_names("sample", 10)
    assert data.class_names("mnist", 10) == tuple("0123456789")
    assert data.class_names("cifar10", 3) == ("0", "1", "2")


def test_read_idx_big_endian_types(tmp_path):
    a = (np.arange(6).reshape(2, 3) * 70000 - 100000).astype(">i4")
    (tmp_path / "f").write_bytes(bytes([0, 0, 0x0C, 2]) + np.asarray([2, 3], ">u4").tobytes()
                                 + a.tobytes())
    got = data.read_idx(tmp_path / "f")
    assert got.dtype == np.int32 and got.dtype.isnative
    np.testing.assert_array_equal(got, a)


def test_mnist_errors(tmp_path):
    write_mnist(tmp_path)
    raw = (tmp_path / "train-labels-idx1-ubyte").read_bytes()
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(raw[:-1])
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte.*expected 5 bytes"):
        data.load_mnist(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(b"\x01\x02" + raw[2:])
    with pytest.raises(ValueError, match="not an idx file"):
        data.load_mnist(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte").unlink()
    with pytest.raises(ValueError, match="missing train-labels-idx1-ubyte"):
        data.load_mnist(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.full(4, 3)))
    with pytest.raises(ValueError, match="expected 5 uint8 labels"):
        data.load_mnist(tmp_path)


# ---------------------------------------------------------------- download from a local server

def make_archive(members, src_root):
    """A tar.gz (bytes) of the files under src_root, stored under the given arcnames."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for arcname, path in members:
            info = tar.gettarinfo(path)
            info.name = arcname  # set after gettarinfo, which would strip a leading "/"
            if info.isfile():
                with open(path, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
    return buf.getvalue()


@pytest.fixture
def cifar_archive(tmp_path):
    src = tmp_path / "src" / "cifar-10-batches-py"
    arrays = write_cifar(src, n=3)
    members = [("cifar-10-batches-py", src)] + [
        (f"cifar-10-batches-py/{f.name}", f) for f in sorted(src.iterdir())]
    return make_archive(members, src), arrays


@pytest.fixture
def server(monkeypatch):
    """An HTTP server on 127.0.0.1 serving the bytes put in ``files`` (path -> bytes)."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    files, hits = {}, []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            body = files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield base, files, hits
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_download_verifies_and_unpacks(tmp_path, server, cifar_archive):
    base, files, hits = server
    body, arrays = cifar_archive
    files["/cifar-10-python.tar.gz"] = body
    dest = tmp_path / "data"
    out = data.download_cifar10(dest, url=base + "/cifar-10-python.tar.gz",
                                md5=hashlib.md5(body).hexdigest(), progress=False)
    assert out == dest / "cifar-10-batches-py"
    assert sorted(p.name for p in dest.iterdir()) == ["cifar-10-batches-py", "cifar-10-python.tar.gz"]
    for e, g in zip(arrays, data.load_cifar10(out)):
        np.testing.assert_array_equal(g, e)
    # A second call reuses the unpacked directory: no new request.
    assert data.download_cifar10(dest, url=base + "/cifar-10-python.tar.gz",
                                 md5=hashlib.md5(body).hexdigest(), progress=False) == out
    assert len(hits) == 1
    # The directory holding cifar-10-batches-py is accepted by the loader too.
    np.testing.assert_array_equal(data.load_cifar10(dest)[3], arrays[3])
    # A verified archive already in dest is unpacked again without a download.
    for f in out.iterdir():
        f.unlink()
    out.rmdir()
    assert data.download_cifar10(dest, url=base + "/cifar-10-python.tar.gz",
                                 md5=hashlib.md5(body).hexdigest(), progress=False) == out
    assert len(hits) == 1 and data.load_cifar10(out)[0].shape == (15, 3, 32, 32)


def test_corrupted_archive_leaves_nothing(tmp_path, server, cifar_archive):
    base, files, _ = server
    body, _ = cifar_archive
    bad = bytearray(body)
    bad[len(bad) // 2] ^= 0xFF
    files["/c.tar.gz"] = bytes(bad)
    dest = tmp_path / "data"
    with pytest.raises(ValueError, match=f"expected MD5 {hashlib.md5(body).hexdigest()}"):
        data.download_cifar10(dest, url=base + "/c.tar.gz", md5=hashlib.md5(body).hexdigest(),
                              progress=False)
    assert list(dest.iterdir()) == []
    # The published checksum of the real archive does not match a fake one either.
    with pytest.raises(ValueError, match=data.CIFAR10_MD5):
        data.download_cifar10(dest, url=base + "/c.tar.gz", progress=False)
    assert list(dest.iterdir()) == []


def test_http_error_leaves_nothing(tmp_path, server):
    base, _, _ = server
    with pytest.raises(OSError, match="could not download"):
        data.download_cifar10(tmp_path, url=base + "/missing.tar.gz", progress=False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink"])
def test_unsafe_archive_is_refused(tmp_path, server, kind):
    base, files, _ = server
    src = tmp_path / "src" / "cifar-10-batches-py"
    write_cifar(src, n=1)
    members = [(f"cifar-10-batches-py/{f.name}", f) for f in sorted(src.iterdir())]
    evil = tmp_path / "src" / "evil.txt"
    evil.write_text("x")
    if kind == "dotdot":
        members.append(("cifar-10-batches-py/../../evil.txt", evil))
    elif kind == "absolute":
        members.append((str(tmp_path / "abs_evil.txt"), evil))
    else:
        link = tmp_path / "src" / "link"
        link.symlink_to("/etc/passwd")
        members.append(("cifar-10-batches-py/link", link))
    body = make_archive(members, src)
    files["/e.tar.gz"] = body
    dest = tmp_path / "deep" / "data"
    with pytest.raises(ValueError, match="refusing"):
        data.download_cifar10(dest, url=base + "/e.tar.gz", md5=hashlib.md5(body).hexdigest(),
                              progress=False)
    # The verified archive stays (it is the real download); nothing was unpacked anywhere.
    assert [p.name for p in dest.iterdir()] == ["e.tar.gz"]
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "abs_evil.txt").exists()


def test_incomplete_archive_is_refused(tmp_path, server):
    base, files, _ = server
    src = tmp_path / "src" / "cifar-10-batches-py"
    write_cifar(src, n=1)
    (src / "data_batch_5").unlink()
    body = make_archive([(f"cifar-10-batches-py/{f.name}", f) for f in sorted(src.iterdir())], src)
    files["/i.tar.gz"] = body
    with pytest.raises(ValueError, match="missing data_batch_5"):
        download.download_cifar10(tmp_path / "d", url=base + "/i.tar.gz",
                                  md5=hashlib.md5(body).hexdigest(), progress=False)
    assert [p.name for p in (tmp_path / "d").iterdir()] == ["i.tar.gz"]


# ---------------------------------------------------------------- the batch loader

def small_set(n=10, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (n, 3, 8, 8), dtype=np.uint8), np.arange(n, dtype=np.int64) % 10)


def test_channel_stats_match_numpy():
    x, _ = small_set(37)
    mean, std = data.channel_stats(x, chunk=5)
    xf = x.astype(np.float64)
    np.testing.assert_allclose(mean, xf.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(std, xf.std(axis=(0, 2, 3)), rtol=1e-12)


def test_loader_normalises_in_order():
    x, y = small_set(10)
    loader = data.BatchLoader(x, y, 4, shuffle=False, rng=0)
    batches = list(loader)
    assert [len(b[1]) for b in batches] == [4, 4, 2] and len(loader) == 3
    xb = np.concatenate([b[0] for b in batches])
    assert xb.dtype == np.float32 and batches[0][1].dtype == np.int64
    mean, std = x.mean(axis=(0, 2, 3)), x.std(axis=(0, 2, 3))
    np.testing.assert_allclose(xb, (x - mean[:, None, None]) / std[:, None, None], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(xb.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(xb.std(axis=(0, 2, 3)), 1, atol=1e-5)
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), y)
    # Validation data takes the training statistics.
    val = data.BatchLoader(x[:3], y[:3], 8, shuffle=False, mean=loader.mean, std=loader.std)
    np.testing.assert_allclose(next(iter(val))[0], xb[:3], rtol=1e-6)


def test_loader_drop_last_and_dtype():
    x, y = small_set(10)
    loader = data.BatchLoader(x, y, 4, drop_last=True, rng=1, dtype=np.float64, normalize=False)
    batches = list(loader)
    assert len(loader) == 2 and [len(b[1]) for b in batches] == [4, 4]
    assert batches[0][0].dtype == np.float64
    for xb, yb in batches:  # unnormalised: the images themselves, in shuffled order
        np.testing.assert_array_equal(xb, x[yb].astype(np.float64))


def test_shuffle_is_a_seeded_permutation_per_epoch():
    x, y = small_set(10)
    y = np.arange(10)
    a = data.BatchLoader(x, y, 3, rng=5)
    e1 = np.concatenate([b[1] for b in a])
    e2 = np.concatenate([b[1] for b in a])
    assert sorted(e1) == list(range(10)) and sorted(e2) == list(range(10))
    assert not np.array_equal(e1, e2) and a.epoch == 2
    b = data.BatchLoader(x, y, 3, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(np.concatenate([t[1] for t in b]), e1)


def reference_crop_flip(x, dy, dx, flip, pad):
    out = np.empty_like(x)
    h, w = x.shape[2:]
    for i in range(len(x)):
        p = np.pad(x[i], ((0, 0), (pad, pad), (pad, pad)))
        crop = p[:, dy[i]:dy[i] + h, dx[i]:dx[i] + w]
        out[i] = crop[:, :, ::-1] if flip[i] else crop
    return out


@settings(max_examples=25)
@given(n=st.integers(1, 5), c=st.integers(1, 3), h=st.integers(1, 6), w=st.integers(1, 6),
       pad=st.integers(0, 4), seed=st.integers(0, 2**16))
def test_random_crop_flip_matches_per_image_reference(n, c, h, w, pad, seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(1, 256, (n, c, h, w)).astype(np.uint8)
    dy, dx = rng.integers(0, 2 * pad + 1, n), rng.integers(0, 2 * pad + 1, n)
    flip = rng.random(n) < 0.5
    got = data.random_crop_flip(x, dy, dx, flip, pad)
    assert got.dtype == x.dtype and got.shape == x.shape
    np.testing.assert_array_equal(got, reference_crop_flip(x, dy, dx, flip, pad))
    centre = data.random_crop_flip(x, np.full(n, pad), np.full(n, pad), np.zeros(n, bool), pad)
    np.testing.assert_array_equal(centre, x)


def test_augment_crops_and_flips_every_image():
    x, y = small_set(64)
    y = np.arange(64)
    loader = data.BatchLoader(x, y, 16, augment=True, rng=3, normalize=False)
    flipped = shifted = 0
    for xb, yb in loader:
        for img, i in zip(xb, yb):  # each output is one of the (2*4+1)^2 * 2 views of its source
            views = [reference_crop_flip(x[i:i + 1], [a], [b], [f], 4)[0]
                     for a in range(9) for b in range(9) for f in (False, True)]
            match = [k for k, v in enumerate(views) if np.array_equal(v, img)]
            assert match
            flipped += match[0] % 2
            shifted += match[0] // 2 != 4 * 9 + 4
    assert 16 < flipped < 48 and shifted > 48  # about half flipped, most moved


def test_state_resumes_mid_epoch_exactly():
    x, y = small_set(23)
    kw = dict(batch_size=4, augment=True, rng=11)
    full = data.BatchLoader(x, y, **kw)
    reference = list(full) + list(full)          # two uninterrupted epochs

    run = data.BatchLoader(x, y, **kw)
    it = iter(run)
    first = [next(it) for _ in range(3)]         # interrupted after 3 batches of epoch 1
    state = json.loads(json.dumps(run.state_dict()))
    resumed = data.BatchLoader(x, y, **dict(kw, rng=999))
    resumed.load_state_dict(state)
    rest = list(resumed) + list(resumed)
    got = first + rest
    assert len(got) == len(reference) + 0 and resumed.epoch == 2
    for (gx, gy), (rx, ry) in zip(got, reference[:len(got)]):
        np.testing.assert_array_equal(gx, rx)
        np.testing.assert_array_equal(gy, ry)
    # After a whole epoch the state points at the start of the next one.
    state = full.state_dict()
    assert state["position"] == 0 and state["epoch"] == 2


def test_state_round_trip_with_mt19937():
    x, y = small_set(9)
    a = data.BatchLoader(x, y, 2, rng=np.random.Generator(np.random.MT19937(4)))
    list(a)
    state = json.loads(json.dumps(a.state_dict()))
    b = data.BatchLoader(x, y, 2, rng=np.random.Generator(np.random.MT19937(0)))
    b.load_state_dict(state)
    for (ax, ay), (bx, by) in zip(a, b):
        np.testing.assert_array_equal(ay, by)
    with pytest.raises(ValueError, match="MT19937"):
        data.BatchLoader(x, y, 2, rng=0).load_state_dict(state)


@pytest.mark.parametrize("kwargs, message", [
    (dict(x=np.zeros((2, 3, 4), np.uint8)), r"\(N, C, H, W\)"),
    (dict(y=np.zeros(3, np.int64)), "labels y of shape"),
    (dict(y=np.zeros(4, np.float32)), "integer labels"),
    (dict(batch_size=0), "batch_size"),
    (dict(batch_size=2.0), "batch_size"),
    (dict(rng="seed"), "rng"),
    (dict(rng=-1), "seed >= 0"),
    (dict(mean=[1, 2, 3]), "both mean and std"),
    (dict(x=np.zeros((4, 3, 2, 2), np.uint8)), "positive std"),
    (dict(normalize=False, mean=0, std=1), "normalize=False"),
    (dict(dtype=np.int32), "float dtype"),
])
def test_loader_rejects_bad_input(kwargs, message):
    x, y = small_set(4)
    args = dict(x=x, y=y, batch_size=2)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        data.BatchLoader(**args)


@needs_shared
def test_loader_on_the_shared_sample():
    x_train, y_train = data.load_cifar10(SHARED)[:2]
    loader = data.BatchLoader(x_train, y_train, 500, augment=True, rng=0)
    assert len(loader) == 10
    seen = 0
    for xb, yb in loader:
        assert xb.shape == (500, 3, 32, 32) and xb.dtype == np.float32 and yb.dtype == np.int64
        assert np.isfinite(xb).all()
        seen += len(yb)
    assert seen == 5000
    # CIFAR-10's well-known channel means (about 125, 123, 114 on the full training set).
    np.testing.assert_allclose(loader.mean, [125.3, 123.0, 113.9], atol=3)
