"""Data fingerprints: digests, the stat cache, DVC md5s. Real files in tmp_path, no mocks."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import shutil
import sqlite3
import sys
import time
import warnings
from pathlib import Path

import pytest

from nbtrack.capture.data import (
    DIR_HEADER,
    DataInput,
    DigestCache,
    combined_digest,
    fingerprint,
)
from nbtrack.errors import DataNotFound, NbtrackWarning, UsageError

HOUR_NS = 3600 * 10**9


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write(path: Path, data: bytes, *, old: bool = True) -> Path:
    """Write ``data``; ``old`` backdates the mtime so the cache may keep the digest (a file
    modified in the last seconds is never cached, see RACY_NS)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if old:
        backdate(path)
    return path


def backdate(path: Path, by_ns: int = HOUR_NS) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, time.time_ns() - by_ns))


def overwrite_keeping_stat(path: Path, data: bytes) -> None:
    """New content, same size, same inode, same mtime_ns: invisible to a stat cache."""
    st = path.stat()
    assert len(data) == st.st_size
    with open(path, "r+b") as f:
        f.write(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_mtime_ns == st.st_mtime_ns
    assert path.stat().st_ino == st.st_ino


def listing_digest(entries: dict[str, bytes]) -> str:
    """The folder digest as documented, computed independently of the module."""
    h = hashlib.sha256(DIR_HEADER)
    for rel in sorted(entries, key=lambda r: r.encode()):
        h.update(rel.encode() + b"\0" + sha(entries[rel]).encode() + b"\n")
    return h.hexdigest()


def cache_rows(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT count(*) FROM digests").fetchone()[0]


@pytest.fixture
def cache(tmp_path):
    with DigestCache(tmp_path / "state" / "digests.sqlite") as c:
        yield c


# --- file and folder digests ----------------------------------------------------------------


def test_file_digest_matches_hashlib_across_chunks(tmp_path, cache):
    data = os.urandom(2 * (1 << 20) + 12345)  # not a multiple of the 1 MiB read size
    write(tmp_path / "d" / "blob.bin", data)
    [inp] = fingerprint(["d/blob.bin"], base_dir=tmp_path, cache=cache)
    assert inp == DataInput(
        given="d/blob.bin",
        path=str((tmp_path / "d" / "blob.bin").resolve()),
        kind="file",
        digest=sha(data),
        size=len(data),
        files=1,
        dvc_md5=None,
    )
    assert inp.to_dict()["digest"] == sha(data)
    assert set(inp.to_dict()) == {"given", "path", "kind", "digest", "size", "files", "dvc_md5"}


def test_empty_file(tmp_path, cache):
    write(tmp_path / "empty", b"")
    [inp] = fingerprint([tmp_path / "empty"], cache=cache)
    assert (inp.digest, inp.size) == (sha(b""), 0)


def test_relative_path_resolves_against_cwd_by_default(tmp_path, cache, monkeypatch):
    write(tmp_path / "x.csv", b"a,b\n1,2\n")
    monkeypatch.chdir(tmp_path)
    [inp] = fingerprint(["./x.csv"], cache=cache)
    assert inp.given == "./x.csv"
    assert inp.path == str((tmp_path / "x.csv").resolve())


def test_folder_digest_is_the_documented_listing(tmp_path, cache):
    files = {"a.txt": b"alpha", "sub/b.txt": b"beta", "sub/deeper/c.bin": b"\x00" * 10}
    for rel, data in files.items():
        write(tmp_path / "ds" / rel, data)
    # noise that must not count, and an empty folder that adds no file
    write(tmp_path / "ds" / ".DS_Store", b"finder")
    write(tmp_path / "ds" / "sub" / "__pycache__" / "m.pyc", b"pyc")
    write(tmp_path / "ds" / ".ipynb_checkpoints" / "a-checkpoint.txt", b"x")
    (tmp_path / "ds" / "empty").mkdir()

    [inp] = fingerprint([tmp_path / "ds"], cache=cache)
    assert inp.kind == "dir"
    assert inp.digest == listing_digest(files)
    assert inp.files == 3
    assert inp.size == sum(len(d) for d in files.values())


def test_empty_folders_share_a_stable_digest(tmp_path, cache):
    (tmp_path / "e1").mkdir()
    (tmp_path / "e2" / "only-empty-subfolders").mkdir(parents=True)
    a, b = fingerprint([tmp_path / "e1", tmp_path / "e2"], cache=cache)
    assert a.digest == b.digest == sha(DIR_HEADER)
    assert (a.files, a.size) == (0, 0)


@pytest.mark.parametrize("change", ["content", "rename", "add", "remove"])
def test_folder_digest_follows_its_files(tmp_path, cache, change):
    write(tmp_path / "ds" / "a.txt", b"alpha")
    write(tmp_path / "ds" / "b.txt", b"beta")
    before = fingerprint([tmp_path / "ds"], cache=cache)[0].digest
    if change == "content":
        write(tmp_path / "ds" / "a.txt", b"ALPHA!")
    elif change == "rename":
        (tmp_path / "ds" / "a.txt").rename(tmp_path / "ds" / "c.txt")
    elif change == "add":
        write(tmp_path / "ds" / "new.txt", b"")
    else:
        (tmp_path / "ds" / "b.txt").unlink()
    assert fingerprint([tmp_path / "ds"], cache=cache)[0].digest != before


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks need privileges on Windows")
def test_folder_follows_symlinks_and_survives_loops(tmp_path, cache):
    write(tmp_path / "outside.txt", b"linked content")
    write(tmp_path / "ds" / "real.txt", b"real")
    (tmp_path / "ds" / "link.txt").symlink_to(tmp_path / "outside.txt")
    (tmp_path / "ds" / "broken").symlink_to(tmp_path / "nowhere")
    (tmp_path / "ds" / "loop").symlink_to(tmp_path / "ds")  # a cycle: skipped
    (tmp_path / "ds" / "self").symlink_to("self")  # ELOOP: skipped
    [inp] = fingerprint([tmp_path / "ds"], cache=cache)
    assert inp.digest == listing_digest({"real.txt": b"real", "link.txt": b"linked content"})


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs mkfifo")
def test_special_files_are_refused_or_skipped(tmp_path, cache):
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(UsageError, match="neither a file nor a folder"):
        fingerprint([tmp_path / "pipe"], cache=cache)
    # inside a folder a fifo is skipped (reading it would block)
    write(tmp_path / "ds" / "a", b"a")
    os.mkfifo(tmp_path / "ds" / "pipe")
    assert fingerprint([tmp_path / "ds"], cache=cache)[0].digest == listing_digest({"a": b"a"})


# --- combined digest -----------------------------------------------------------------------


def make_dataset(root: Path) -> list[Path]:
    write(root / "train.csv", b"x,y\n1,2\n")
    write(root / "images" / "0.png", b"\x89PNG0")
    write(root / "images" / "1.png", b"\x89PNG1")
    return [root / "train.csv", root / "images"]


def test_combined_digest_ignores_order_and_location(tmp_path, cache):
    here = make_dataset(tmp_path / "checkout-a")
    shutil.copytree(tmp_path / "checkout-a", tmp_path / "elsewhere" / "checkout-b")
    there = [
        tmp_path / "elsewhere" / "checkout-b" / p.relative_to(tmp_path / "checkout-a") for p in here
    ]

    a = fingerprint(here, cache=cache)
    b = fingerprint(list(reversed(there)), cache=cache)
    assert {i.path for i in a}.isdisjoint(i.path for i in b)
    assert combined_digest(a) == combined_digest(b) == combined_digest(list(reversed(a)))

    write(tmp_path / "elsewhere" / "checkout-b" / "images" / "1.png", b"\x89PNG1-changed")
    assert combined_digest(fingerprint(there, cache=cache)) != combined_digest(a)


def test_combined_digest_counts_a_path_once_and_copies_twice(tmp_path, cache):
    write(tmp_path / "a.csv", b"same")
    write(tmp_path / "copy.csv", b"same")
    once = combined_digest(fingerprint([tmp_path / "a.csv"], cache=cache))
    twice = combined_digest(fingerprint([tmp_path / "a.csv", "a.csv"], tmp_path, cache=cache))
    copies = combined_digest(fingerprint([tmp_path / "a.csv", tmp_path / "copy.csv"], cache=cache))
    assert once == twice
    assert copies != once


# --- the stat cache ------------------------------------------------------------------------


def test_changed_file_changes_digest(tmp_path, cache):
    f = write(tmp_path / "data.bin", b"version one")
    first = fingerprint([f], cache=cache)[0].digest
    write(f, b"version two, longer")
    assert fingerprint([f], cache=cache)[0].digest == sha(b"version two, longer") != first


def test_unchanged_stat_uses_cache_and_touch_rehashes(tmp_path, cache):
    f = write(tmp_path / "data.bin", b"original bytes")
    assert fingerprint([f], cache=cache)[0].digest == sha(b"original bytes")

    # Same size, inode and mtime_ns: the file is not read again, so the stale digest comes back.
    overwrite_keeping_stat(f, b"modified bytes")
    assert fingerprint([f], cache=cache)[0].digest == sha(b"original bytes")

    # Touching the mtime (still long ago) makes it a new version: re-hashed.
    backdate(f, by_ns=2 * HOUR_NS)
    assert fingerprint([f], cache=cache)[0].digest == sha(b"modified bytes")


def test_replaced_file_is_rehashed_even_with_same_size_and_mtime(tmp_path, cache):
    f = write(tmp_path / "data.bin", b"first")
    fingerprint([f], cache=cache)
    st = f.stat()
    tmp = write(tmp_path / "incoming.bin", b"other")
    os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(tmp, f)  # a new inode, as writers that rename into place produce
    assert f.stat().st_ino != st.st_ino
    assert fingerprint([f], cache=cache)[0].digest == sha(b"other")


def test_freshly_written_file_is_not_trusted_to_the_cache(tmp_path, cache):
    # Written a moment ago: another write in the same timestamp tick would keep size and mtime.
    f = write(tmp_path / "fresh.bin", b"racy one", old=False)
    fingerprint([f], cache=cache)
    overwrite_keeping_stat(f, b"racy two")
    assert fingerprint([f], cache=cache)[0].digest == sha(b"racy two")


def test_default_cache_lives_in_the_state_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("NBTRACK_STATE_DIR", str(tmp_path / "state"))
    f = write(tmp_path / "data.bin", b"payload")
    fingerprint([f])
    assert cache_rows(tmp_path / "state" / "digests.sqlite") == 1
    overwrite_keeping_stat(f, b"PAYLOAD")
    assert fingerprint([f])[0].digest == sha(b"payload")  # served from the default cache


def test_corrupt_cache_file_does_not_break_fingerprinting(tmp_path):
    db = tmp_path / "digests.sqlite"
    db.write_bytes(b"this is not an sqlite database" * 100)
    f = write(tmp_path / "data.bin", b"payload")
    with pytest.warns(NbtrackWarning, match="unusable"), DigestCache(db) as cache:
        [inp] = fingerprint([f], cache=cache)
    assert inp.digest == sha(b"payload")


def test_cache_path_that_cannot_be_opened_does_not_break_fingerprinting(tmp_path):
    (tmp_path / "digests.sqlite").mkdir()  # a folder where the file should be
    write(tmp_path / "ds" / "a", b"a")
    with pytest.warns(NbtrackWarning), DigestCache(tmp_path / "digests.sqlite") as cache:
        [inp] = fingerprint([tmp_path / "ds"], cache=cache)
    assert inp.digest == listing_digest({"a": b"a"})


@pytest.mark.skipif(
    sys.platform == "win32" or os.geteuid() == 0, reason="needs POSIX permissions, not root"
)
def test_read_only_cache_does_not_break_fingerprinting(tmp_path):
    db = tmp_path / "state" / "digests.sqlite"
    known = write(tmp_path / "known.bin", b"known")
    with DigestCache(db) as c:
        fingerprint([known], cache=c)
    new = write(tmp_path / "new.bin", b"unknown")
    os.chmod(db, 0o444)
    os.chmod(db.parent, 0o555)
    try:
        with pytest.warns(NbtrackWarning), DigestCache(db) as cache:
            a, b = fingerprint([known, new], cache=cache)
    finally:
        os.chmod(db.parent, 0o755)
        os.chmod(db, 0o644)
    assert (a.digest, b.digest) == (sha(b"known"), sha(b"unknown"))


def test_a_cache_that_cannot_be_created_does_not_break_fingerprinting(tmp_path):
    # Runs as root too (CI here), where the permission test above cannot: the cache's folder
    # would be inside a regular file.
    (tmp_path / "state").write_text("a file where the cache's folder should be")
    db = tmp_path / "state" / "digests.sqlite"
    data = write(tmp_path / "data.bin", b"payload")
    with pytest.warns(NbtrackWarning), DigestCache(db) as cache:
        (found,) = fingerprint([data], cache=cache)
    assert found.digest == sha(b"payload")


def test_locked_cache_falls_back_quietly(tmp_path):
    db = tmp_path / "digests.sqlite"
    f = write(tmp_path / "data.bin", b"payload")
    with DigestCache(db) as warmup:
        fingerprint([f], cache=warmup)  # creates the table
    write(f, b"new payload")
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another kernel in the middle of a long write
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a busy lock is not worth a warning
            with DigestCache(db, timeout=0.1) as cache:
                [inp] = fingerprint([f], cache=cache)
    finally:
        holder.rollback()
        holder.close()
    assert inp.digest == sha(b"new payload")


def _fingerprint_in_child(folder: str, db: str, barrier, results) -> None:
    barrier.wait()  # start hashing at the same moment as the other process
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with DigestCache(db) as cache:
            digest = fingerprint([folder], cache=cache)[0].digest
    results.put((os.getpid(), digest, [str(w.message) for w in caught]))


def test_two_processes_share_the_cache(tmp_path):
    files = {f"part-{i:03d}.txt": f"row {i}\n".encode() * 50 for i in range(300)}
    for rel, data in files.items():
        write(tmp_path / "ds" / rel, data)
    db = tmp_path / "state" / "digests.sqlite"
    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter, like a second kernel
    barrier, q = ctx.Barrier(2), ctx.Queue()
    procs = [
        ctx.Process(target=_fingerprint_in_child, args=(str(tmp_path / "ds"), str(db), barrier, q))
        for _ in range(2)
    ]
    for p in procs:
        p.start()
    got = [q.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert [r[1] for r in got] == [listing_digest(files)] * 2
    assert [r[2] for r in got] == [[], []]  # neither had to give up on the cache
    assert cache_rows(db) == len(files)


# --- missing inputs ------------------------------------------------------------------------


def test_missing_path_is_named_and_nothing_is_hashed(tmp_path, monkeypatch):
    monkeypatch.setenv("NBTRACK_STATE_DIR", str(tmp_path / "state"))
    write(tmp_path / "present.csv", b"here")
    db = tmp_path / "own" / "digests.sqlite"
    for cache in (None, DigestCache(db)):
        with pytest.raises(DataNotFound) as err:
            fingerprint(["present.csv", "data/missing.npz"], base_dir=tmp_path, cache=cache)
        assert err.value.path == "data/missing.npz"
        assert "data/missing.npz" in str(err.value)
    # No cache was ever opened: no file was looked up, hashed or recorded.
    assert not (tmp_path / "state").exists()
    assert not db.exists()


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks need privileges on Windows")
def test_broken_symlink_input_is_missing(tmp_path, cache):
    (tmp_path / "dangling").symlink_to(tmp_path / "gone")
    with pytest.raises(DataNotFound, match="dangling"):
        fingerprint([tmp_path / "dangling"], cache=cache)


# --- DVC -----------------------------------------------------------------------------------

FILE_MD5 = "a304afb96060aad90176268345e10355"
DIR_MD5 = "b6923e1e4ad16ea1a7e2b328842d56a2.dir"


def test_dvc_md5_from_dot_dvc_files(tmp_path, cache):
    write(tmp_path / "data.xml", b"<xml/>")
    (tmp_path / "data.xml.dvc").write_text(
        f"outs:\n- md5: {FILE_MD5}\n  size: 6\n  hash: md5\n  path: data.xml\n"
    )
    write(tmp_path / "images" / "0.png", b"png")
    (tmp_path / "images.dvc").write_text(
        f"outs:\n- md5: {DIR_MD5}\n  size: 3\n  nfiles: 1\n  hash: md5\n  path: images\n"
    )
    f, d = fingerprint(["data.xml", "images/"], base_dir=tmp_path, cache=cache)
    assert (f.dvc_md5, d.dvc_md5) == (FILE_MD5, DIR_MD5)


@pytest.mark.parametrize(
    "content",
    [
        "outs: [unclosed\n",  # not YAML
        "just a string\n",  # YAML, wrong shape
        "outs:\n- path: data.xml\n",  # no md5
        f"outs:\n- md5: {FILE_MD5}\n  path: other.xml\n",  # names another path
        b"\xff\xfe not utf-8",
    ],
)
def test_malformed_or_unrelated_dot_dvc_gives_none(tmp_path, cache, content):
    write(tmp_path / "data.xml", b"<xml/>")
    dvc = tmp_path / "data.xml.dvc"
    dvc.write_bytes(content if isinstance(content, bytes) else content.encode())
    [inp] = fingerprint([tmp_path / "data.xml"], cache=cache)
    assert inp.dvc_md5 is None
    assert inp.digest == sha(b"<xml/>")


LOCK = f"""\
schema: '2.0'
stages:
  prepare:
    cmd: python prepare.py
    deps:
    - path: data/raw.csv
      md5: 00000000000000000000000000000000
    outs:
    - path: data/prepared
      md5: {DIR_MD5}
      size: 3
      nfiles: 1
  train:
    cmd: python train.py
    outs:
    - path: models/model.pkl
      md5: {FILE_MD5}
"""


def test_dvc_md5_from_dvc_lock_in_a_parent(tmp_path, cache):
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "dvc.lock").write_text(LOCK)
    write(repo / "data" / "prepared" / "part-0", b"p")
    write(repo / "models" / "model.pkl", b"m")
    write(repo / "data" / "raw.csv", b"r")  # a dep, not an out: DVC does not track it
    prepared, model, raw = fingerprint(
        ["data/prepared", "models/model.pkl", "data/raw.csv"], base_dir=repo, cache=cache
    )
    assert (prepared.dvc_md5, model.dvc_md5, raw.dvc_md5) == (DIR_MD5, FILE_MD5, None)


def test_dvc_lock_search_stops_at_the_repository_root(tmp_path, cache):
    (tmp_path / "dvc.lock").write_text(LOCK.replace("path: models/", "path: repo/models/"))
    repo = tmp_path / "repo"
    (repo / ".dvc").mkdir(parents=True)
    write(repo / "models" / "model.pkl", b"m")
    [inp] = fingerprint([repo / "models" / "model.pkl"], cache=cache)
    assert inp.dvc_md5 is None


def test_dvc_lock_paths_are_relative_to_the_stage_wdir(tmp_path, cache):
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n  train:\n    wdir: src\n    cmd: python train.py\n    outs: [out/model.pkl]\n"
    )
    (tmp_path / "dvc.lock").write_text(
        f"schema: '2.0'\nstages:\n  train:\n    cmd: python train.py\n    outs:\n"
        f"    - path: out/model.pkl\n      md5: {FILE_MD5}\n"
    )
    write(tmp_path / "src" / "out" / "model.pkl", b"m")
    [inp] = fingerprint([tmp_path / "src" / "out" / "model.pkl"], cache=cache)
    assert inp.dvc_md5 == FILE_MD5


def test_dvc_1_lock_format_without_stages_key(tmp_path, cache):
    (tmp_path / "dvc.lock").write_text(
        f"train:\n  cmd: python train.py\n  outs:\n  - path: model.pkl\n    md5: {FILE_MD5}\n"
    )
    write(tmp_path / "model.pkl", b"m")
    assert fingerprint([tmp_path / "model.pkl"], cache=cache)[0].dvc_md5 == FILE_MD5


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks need privileges on Windows")
def test_dvc_md5_found_for_a_symlink_into_the_dvc_cache(tmp_path, cache):
    # DVC's symlink cache type: the workspace file is a link into .dvc/cache.
    write(tmp_path / ".dvc" / "cache" / "a3" / "04afb9", b"<xml/>")
    (tmp_path / "data.xml").symlink_to(tmp_path / ".dvc" / "cache" / "a3" / "04afb9")
    (tmp_path / "data.xml.dvc").write_text(f"outs:\n- md5: {FILE_MD5}\n  path: data.xml\n")
    [inp] = fingerprint([tmp_path / "data.xml"], cache=cache)
    assert inp.path.endswith("04afb9")  # resolved
    assert inp.dvc_md5 == FILE_MD5


# --- figures (printed, never asserted) -----------------------------------------------------


def test_print_cold_and_warm_figures(tmp_path, capsys):
    block = os.urandom(1 << 20)
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        for _ in range(200):
            f.write(block)
    backdate(big)
    for i in range(2000):
        write(tmp_path / "many" / f"d{i // 100:02d}" / f"f{i:04d}.txt", b"%d\n" % i * 20)

    figures = {}
    for name, target in (("200 MB file", big), ("2,000 small files", tmp_path / "many")):
        with DigestCache(tmp_path / f"{name}.sqlite") as cache:
            t0 = time.perf_counter()
            [cold] = fingerprint([target], cache=cache)
            t1 = time.perf_counter()
            [warm] = fingerprint([target], cache=cache)
            t2 = time.perf_counter()
        assert warm == cold
        figures[name] = (t1 - t0, t2 - t1)
    assert cold.files == 2000
    with capsys.disabled():
        print()
        for name, (cold_s, warm_s) in figures.items():
            print(f"fingerprint {name}: cold {cold_s * 1000:.1f} ms, warm {warm_s * 1000:.1f} ms")
