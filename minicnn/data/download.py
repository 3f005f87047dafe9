"""Fetch the official CIFAR-10 archive, check it, unpack it safely.

``download_cifar10(dest)`` leaves ``dest/cifar-10-python.tar.gz`` (170 MB) and
``dest/cifar-10-batches-py/`` (what ``load_cifar10`` reads), and nothing else:

1. the archive is streamed into a hidden temporary file in ``dest`` with a progress bar,
   its MD5 computed on the way; only if it equals the published checksum is the file
   renamed (``os.replace``, atomic) to its final name;
2. every member of the archive is checked before anything is written -- regular files
   and directories only, no absolute paths, no ``..`` -- so an archive cannot write
   outside ``dest`` (the ``tarfile`` "data" filter is applied too where Python has it);
3. it is unpacked into a hidden temporary directory in ``dest`` that is renamed to
   ``cifar-10-batches-py`` only once complete.

Any failure (network, checksum, a bad member, Ctrl-C) removes the temporary file and
directory, so an interrupted download never leaves a half-written dataset behind.
"""
import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path, PurePosixPath

from minicnn.data.cifar import CIFAR10_DIR, META_FILE, TEST_FILE, TRAIN_FILES

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
_REQUIRED = TRAIN_FILES + (TEST_FILE, META_FILE)
_CHUNK = 1 << 20


def md5sum(path):
    """The hex MD5 digest of the file at ``path`` (read in 1 MB chunks)."""
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _remove(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def fetch(url, target, md5, progress=True, timeout=60.0):
    """Download ``url`` to the file ``target``, atomically, checking its MD5 on the way.

    The bytes go to a temporary file next to ``target``; a checksum mismatch raises
    ``ValueError`` (expected and received digests in the message) and a network error
    raises ``OSError`` naming the URL.  In both cases the temporary file is removed and
    ``target`` is untouched.
    """
    from tqdm.auto import tqdm

    target = Path(target)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        h = hashlib.md5()
        request = urllib.request.Request(url, headers={"User-Agent": "minicnn"})
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(request, timeout=timeout) as r:
            total = r.headers.get("Content-Length")
            with tqdm(total=int(total) if total else None, unit="B", unit_scale=True,
                      unit_divisor=1024, desc=target.name, disable=not progress) as bar:
                for chunk in iter(lambda: r.read(_CHUNK), b""):
                    h.update(chunk)
                    out.write(chunk)
                    bar.update(len(chunk))
            out.flush()
            os.fsync(out.fileno())
        got = h.hexdigest()
        if md5 is not None and got != md5.lower():
            raise ValueError(f"download of {url} is corrupt: expected MD5 {md5}, received {got} "
                             "(nothing was kept; try again)")
        os.replace(tmp, target)
    except urllib.error.URLError as e:
        _remove(tmp)
        raise OSError(f"could not download {url}: {e.reason}") from e
    except BaseException:
        _remove(tmp)
        raise
    return target


def _check_members(archive, members, top):
    """Refuse anything but plain files and directories under ``top/``, before extracting."""
    for m in members:
        p = PurePosixPath(m.name)
        if p.is_absolute() or ".." in p.parts or "\\" in m.name or (p.parts and ":" in p.parts[0]):
            raise ValueError(f"{archive}: refusing unsafe member path {m.name!r} "
                             "(absolute or containing '..')")
        if not (m.isfile() or m.isdir()):
            raise ValueError(f"{archive}: refusing member {m.name!r}: only regular files and "
                             "directories are expected (no links or devices)")
        if not p.parts or p.parts[0] != top:
            raise ValueError(f"{archive}: expected every member under {top}/, received {m.name!r}")


def extract(archive, dest, top=CIFAR10_DIR, required=_REQUIRED):
    """Unpack the tar.gz ``archive`` whose members all live under ``top/`` into ``dest/top``.

    Members are checked first (see module docstring); the tree is unpacked into a temporary
    directory in ``dest`` and renamed into place only when every file in ``required`` is
    there.  Returns ``dest/top``.  Raises ``ValueError`` for an unsafe or incomplete archive.
    """
    archive, dest = Path(archive), Path(dest)
    tmpdir = tempfile.mkdtemp(dir=dest, prefix=f".{top}.", suffix=".extract")
    try:
        try:
            with tarfile.open(archive, "r:gz") as tar:
                members = tar.getmembers()
                _check_members(archive, members, top)
                if hasattr(tarfile, "data_filter"):  # Python 3.12, 3.11.4+, 3.10.12+
                    tar.extractall(tmpdir, members=members, filter="data")
                else:
                    tar.extractall(tmpdir, members=members)
        except (tarfile.TarError, EOFError, OSError) as e:
            raise ValueError(f"{archive}: not a readable tar.gz archive ({e})") from None
        missing = [f for f in required if not (Path(tmpdir) / top / f).is_file()]
        if missing:
            raise ValueError(f"{archive}: expected {top}/ to contain {', '.join(required)}; "
                             f"missing {', '.join(missing)}")
        os.replace(Path(tmpdir) / top, dest / top)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return dest / top


def download_cifar10(dest, url=CIFAR10_URL, md5=CIFAR10_MD5, progress=True, timeout=60.0):
    """Download and unpack CIFAR-10 (python version) into directory ``dest``.

    Returns the path of ``dest/cifar-10-batches-py``, ready for ``load_cifar10``.  Work
    already done is reused: an existing complete directory is returned at once, and an
    archive already in ``dest`` with the right MD5 is not fetched again.  ``md5=None``
    skips the checksum (only for archives you built yourself).  Raises ``ValueError`` on a
    checksum mismatch or an unsafe archive, ``OSError`` on a network error; neither leaves
    a partial file or directory in ``dest``.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / CIFAR10_DIR
    if target.exists():
        missing = [f for f in _REQUIRED if not (target / f).is_file()]
        if not missing:
            return target
        raise ValueError(f"download_cifar10: {target} exists but is incomplete (missing "
                         f"{', '.join(missing)}); remove it and run again")
    archive = dest / (PurePosixPath(urllib.parse.urlsplit(url).path).name or "cifar-10-python.tar.gz")
    if not (archive.is_file() and (md5 is None or md5sum(archive) == md5.lower())):
        fetch(url, archive, md5, progress=progress, timeout=timeout)
    return extract(archive, dest)
