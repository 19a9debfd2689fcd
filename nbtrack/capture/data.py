"""Data fingerprints: a sha256 per ``--data`` input, one combined digest, and DVC's md5 when DVC
tracks the input.

Choices this module makes (the run record depends on them, so they are part of the contract):

- A file's digest is the sha256 of its bytes, the same as ``hashlib.sha256(data).hexdigest()``.
- A folder's digest is a sha256 over a listing, one line per file sorted by the UTF-8 bytes of
  its relative posix path: ``relpath NUL file-digest LF``, after a ``nbtrack-dir-v1`` header line.
  NUL cannot occur in a path and the digest has a fixed length, so no two listings collide by
  construction. Only regular files count: empty sub-folders, broken symlinks, fifos, sockets
  and devices add nothing (reading a fifo would block). An empty folder has a stable digest.
- Symlinks inside a folder are followed, to files and to folders, because DVC's symlink cache
  fills the workspace with links; a link back to a folder being walked (a cycle) is skipped.
- Inside a folder, editor and VCS noise is ignored: ``.DS_Store``, ``Thumbs.db``, ``__pycache__``,
  ``.ipynb_checkpoints``, ``.git``, ``.hg``, ``.dvc`` (DVC ignores the last three as well).
  ``.dvcignore`` is not read. A path given directly is always hashed, whatever its name.
- ``combined_digest`` hashes the sorted input digests (one per distinct input path), never a
  path: the same data in another checkout gives the same ``data_hash``.
- ``~`` in a given path is expanded: the magic's line is not a shell, so nothing else would.

The digest cache is a small SQLite file keyed like DVC's state database: (absolute path, size,
mtime_ns, inode) -> digest. Any cache problem turns the cache off for the rest of the call and
the data is hashed anyway.
"""

# Over 400 lines: one contract (the digests a run records), its folder walk and DVC reading
# together, so the choices listed above stay next to the code that makes them.

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import os
import sqlite3
import stat
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import yaml

from nbtrack import settings
from nbtrack.errors import DataNotFound, NbtrackWarning, UsageError

CHUNK = 1 << 20  # 1 MiB reads: large enough to amortise syscalls, small enough to stay in cache
DIR_HEADER = b"nbtrack-dir-v1\n"  # a new listing format gets a new header, so old digests differ
COMBINED_HEADER = b"nbtrack-data-v1\n"
IGNORED_NAMES = frozenset(
    {".DS_Store", "Thumbs.db", "__pycache__", ".ipynb_checkpoints", ".git", ".hg", ".dvc"}
)
# A file modified this close to the moment it was hashed may be modified again within the same
# timestamp tick (coarse kernel clocks, 1-2 s on FAT/HFS+/some network filesystems) without its
# size or mtime changing, so its digest is not cached until it has been quiet this long (git's
# "racy clean" problem). The cost is one extra hash of freshly written data.
RACY_NS = 2_000_000_000


@dataclass(frozen=True)
class DataInput:
    """One ``--data`` input as recorded in the run."""

    given: str  # the path as the user wrote it
    path: str  # absolute, resolved path
    kind: str  # "file" or "dir"
    digest: str  # sha256 hex (see the module docstring for folders)
    size: int  # bytes; for a folder, the sum over its files
    files: int  # 1 for a file; for a folder, the number of files hashed
    dvc_md5: str | None  # DVC's md5 when a .dvc file or a dvc.lock tracks this path

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class DigestCache:
    """(path, size, mtime_ns, inode) -> sha256, in an SQLite file shared by every kernel.

    The connection opens on first use. Any error (corrupt file, unwritable folder, a lock held
    past the busy timeout) disables this instance: ``get`` then misses and ``put`` does nothing,
    so a broken cache costs time, never a fingerprint. Lasting problems are reported once as an
    ``NbtrackWarning``; a busy lock is not, it is gone by the next call.
    """

    def __init__(self, path: str | os.PathLike, *, timeout: float = 2.0):
        self.path = os.fspath(path)
        self.timeout = timeout
        self._conn: sqlite3.Connection | None = None
        self._pid: int | None = None
        self._disabled = False

    def get(self, path: str, st: os.stat_result) -> str | None:
        conn = self._connect()
        if conn is None:
            return None
        try:
            row = conn.execute(
                "SELECT size, mtime_ns, inode, digest FROM digests WHERE path = ?",
                (os.fsencode(path),),
            ).fetchone()
        except (sqlite3.Error, ValueError, OverflowError) as exc:
            self._disable(exc)
            return None
        if row is None or tuple(row[:3]) != (st.st_size, st.st_mtime_ns, str(st.st_ino)):
            return None
        return row[3]

    def put(self, path: str, st: os.stat_result, digest: str) -> None:
        if st.st_mtime_ns + RACY_NS > time.time_ns():
            return
        conn = self._connect()
        if conn is None:
            return
        try:
            conn.execute(
                "INSERT OR REPLACE INTO digests (path, size, mtime_ns, inode, digest)"
                " VALUES (?, ?, ?, ?, ?)",
                (os.fsencode(path), st.st_size, st.st_mtime_ns, str(st.st_ino), digest),
            )
        except (sqlite3.Error, ValueError, OverflowError) as exc:
            self._disable(exc)

    def close(self) -> None:
        if self._conn is not None and self._pid == os.getpid():
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
        self._conn = None

    def __enter__(self) -> DigestCache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _connect(self) -> sqlite3.Connection | None:
        if self._disabled:
            return None
        # A connection inherited through fork() must not be used by the child: SQLite's locks
        # belong to the parent. Open a fresh one instead (and leave the parent's alone).
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        try:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            # isolation_level=None: every put commits at once, so a lock is never held across
            # the hashing of a file and other kernels wait at most one statement.
            conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
        except (sqlite3.Error, OSError) as exc:
            self._disable(exc)
            return None
        try:
            # WAL lets readers and a writer work at once; it is refused on some network
            # filesystems and while another connection holds a lock, and the default rollback
            # journal is still correct, only slower under contention.
            with contextlib.suppress(sqlite3.OperationalError):
                conn.execute("PRAGMA journal_mode=WAL")
            # The cache can be rebuilt by hashing, so losing the last commits on a power cut is
            # fine, and skipping the fsync per commit is what makes a per-file put cheap.
            conn.execute("PRAGMA synchronous=NORMAL")
            # inode as TEXT: st_ino can exceed SQLite's signed 64-bit integers (and is 128 bits
            # on ReFS); path as BLOB: file names need not be valid UTF-8.
            conn.execute(
                "CREATE TABLE IF NOT EXISTS digests (path BLOB PRIMARY KEY, size INTEGER,"
                " mtime_ns INTEGER, inode TEXT, digest TEXT)"
            )
        except sqlite3.Error as exc:
            conn.close()
            self._disable(exc)
            return None
        self._conn, self._pid = conn, os.getpid()
        return conn

    def _disable(self, exc: BaseException) -> None:
        self.close()
        self._disabled = True
        msg = str(exc).lower()
        if "locked" not in msg and "busy" not in msg:
            warnings.warn(
                f"the data digest cache {self.path} is unusable ({exc}); hashing without it. "
                "Deleting the file is safe: it is rebuilt on the next fingerprint",
                NbtrackWarning,
                stacklevel=4,
            )


def fingerprint(
    paths: Sequence[str | os.PathLike],
    base_dir: str | os.PathLike | None = None,
    cache: DigestCache | None = None,
) -> list[DataInput]:
    """Digest every input, in the order given.

    Relative paths resolve against ``base_dir`` (default: the working directory). Every path is
    checked before any is hashed, so a typo in the last ``--data`` fails at once instead of after
    minutes of hashing the others. Errors reading the data (permissions) propagate.
    """
    base = os.fspath(base_dir) if base_dir is not None else os.getcwd()
    targets = []
    for p in paths:
        given = os.fsdecode(p)
        joined = os.path.join(base, os.path.expanduser(given))
        if not os.path.exists(joined):
            raise DataNotFound(given)
        real = os.path.realpath(joined)
        if os.path.isdir(real):
            kind = "dir"
        elif os.path.isfile(real):
            kind = "file"
        else:
            raise UsageError(
                f"data input {given!r} is neither a file nor a folder",
                "pass regular files or folders to --data",
            )
        targets.append((given, os.path.abspath(joined), real, kind))

    own_cache = cache is None
    if cache is None:
        cache = DigestCache(settings.current().state_dir / "digests.sqlite")
    try:
        inputs = []
        for given, logical, real, kind in targets:
            if kind == "file":
                digest, size = _file_digest(real, cache)
                files = 1
            else:
                digest, size, files = _dir_digest(real, cache)
            # Look DVC up under the path as written too: with DVC's symlink cache the resolved
            # path points into .dvc/cache, where no .dvc file or dvc.lock names it.
            dvc = _dvc_md5(dict.fromkeys([logical, real]))
            inputs.append(DataInput(given, real, kind, digest, size, files, dvc))
        return inputs
    finally:
        if own_cache:
            cache.close()


def combined_digest(inputs: Sequence[DataInput]) -> str:
    """One sha256 over all inputs: independent of their order and of where the data sits.

    Only the inputs' digests enter it, sorted; the same path given twice counts once, while two
    different paths with equal content count twice (two copies are two inputs).
    """
    unique = {i.path: i.digest for i in inputs}
    h = hashlib.sha256(COMBINED_HEADER)
    for digest in sorted(unique.values()):
        h.update(digest.encode("ascii") + b"\n")
    return h.hexdigest()


def _file_digest(path: str, cache: DigestCache) -> tuple[str, int]:
    st = os.stat(path)
    cached = cache.get(path, st)
    if cached is not None:
        return cached, st.st_size
    h = hashlib.sha256()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    size = 0
    with open(path, "rb", buffering=0) as f:
        before = os.fstat(f.fileno())
        while n := f.readinto(buf):
            h.update(view[:n])
            size += n
        after = os.fstat(f.fileno())
    digest = h.hexdigest()
    # Cache only what is known to be consistent: the path still names the file that was read,
    # and nothing wrote to it while it was being read.
    if _same_version(st, before) and _same_version(before, after):
        cache.put(path, after, digest)
    return digest, size


def _same_version(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_size, a.st_mtime_ns, a.st_ino, a.st_dev) == (
        b.st_size,
        b.st_mtime_ns,
        b.st_ino,
        b.st_dev,
    )


def _dir_digest(root: str, cache: DigestCache) -> tuple[str, int, int]:
    h = hashlib.sha256(DIR_HEADER)
    size = 0
    entries = _walk(root)
    for rel, path in entries:
        digest, n = _file_digest(path, cache)
        h.update(rel + b"\0" + digest.encode("ascii") + b"\n")
        size += n
    return h.hexdigest(), size, len(entries)


def _walk(root: str) -> list[tuple[bytes, str]]:
    """Regular files under ``root`` as (relative posix path as UTF-8 bytes, path), sorted."""
    found: list[tuple[bytes, str]] = []
    top = os.stat(root)
    # An explicit stack, not recursion: deep trees must not hit the recursion limit. Each entry
    # carries the (dev, inode) of the folders above it, to spot a symlink that loops back.
    stack: list[tuple[str, str, frozenset]] = [(root, "", frozenset({(top.st_dev, top.st_ino)}))]
    while stack:
        folder, prefix, above = stack.pop()
        with os.scandir(folder) as it:
            entries = list(it)
        for e in entries:
            if e.name in IGNORED_NAMES:
                continue
            rel = prefix + e.name
            try:
                st = e.stat()  # follows symlinks
            except OSError as exc:
                # A broken or self-referencing symlink, or a file removed since the scan: there
                # is no content to hash. Anything else (permissions) is the user's to see.
                if exc.errno in (errno.ENOENT, errno.ELOOP):
                    continue
                raise
            if stat.S_ISDIR(st.st_mode):
                key = (st.st_dev, st.st_ino)
                if key not in above:
                    stack.append((e.path, rel + "/", above | {key}))
            elif stat.S_ISREG(st.st_mode):
                # utf-8 with surrogateescape gives the raw name back on POSIX, whatever it is.
                found.append((rel.encode("utf-8", "surrogateescape"), e.path))
    found.sort()
    return found


# --- DVC ------------------------------------------------------------------------------------


def _dvc_md5(candidates: Iterable[str]) -> str | None:
    for target in candidates:
        md5 = _md5_from_dvc_file(target) or _md5_from_dvc_lock(target)
        if md5:
            return md5
    return None


def _load_yaml(path: str) -> object:
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f)
    except (OSError, ValueError, yaml.YAMLError):  # ValueError covers bad UTF-8
        return None


def _md5_in_outs(outs: object, base: str, target: str) -> str | None:
    """The md5 of the out in ``outs`` (paths relative to ``base``) that names ``target``."""
    if not isinstance(outs, list):
        return None
    for out in outs:
        if not isinstance(out, dict) or not isinstance(out.get("path"), str):
            continue
        if _same_path(os.path.join(base, out["path"]), target):
            md5 = out.get("md5")
            return md5 if isinstance(md5, str) and md5 else None
    return None


def _same_path(a: str, b: str) -> bool:
    return os.path.normcase(os.path.normpath(a)) == os.path.normcase(os.path.normpath(b))


def _md5_from_dvc_file(target: str) -> str | None:
    """``dvc add data`` writes ``data.dvc`` beside ``data``; its out paths are relative to it."""
    dvcfile = target + ".dvc"
    if not os.path.isfile(dvcfile):
        return None
    doc = _load_yaml(dvcfile)
    if not isinstance(doc, dict):
        return None
    wdir = doc.get("wdir") if isinstance(doc.get("wdir"), str) else "."
    return _md5_in_outs(doc.get("outs"), os.path.join(os.path.dirname(dvcfile), wdir), target)


def _md5_from_dvc_lock(target: str) -> str | None:
    """The first dvc.lock naming ``target`` among its folder and the parents, up to the root of
    the repository (a folder holding ``.dvc`` or ``.git``) or of the filesystem."""
    folder = os.path.dirname(target)
    while True:
        lock = os.path.join(folder, "dvc.lock")
        if os.path.isfile(lock):
            md5 = _md5_in_lock(lock, target)
            if md5:
                return md5
        # .git may be a file (worktrees, submodules), so test existence, not a folder.
        if os.path.isdir(os.path.join(folder, ".dvc")) or os.path.exists(
            os.path.join(folder, ".git")
        ):
            return None
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent


def _md5_in_lock(lock: str, target: str) -> str | None:
    doc = _load_yaml(lock)
    if not isinstance(doc, dict):
        return None
    # Schema 2 (DVC >= 2.0) nests stages under "stages"; DVC 1.x lock files had the stages at
    # the top level and no "schema" key.
    stages = doc.get("stages") if "schema" in doc or "stages" in doc else doc
    if not isinstance(stages, dict):
        return None
    folder = os.path.dirname(lock)
    wdirs = _stage_wdirs(os.path.join(folder, "dvc.yaml"))
    for name, stage in stages.items():
        if not isinstance(stage, dict):
            continue
        # Lock paths are relative to the stage's wdir; foreach/matrix stages are "name@key".
        wdir = wdirs.get(str(name).split("@", 1)[0], ".")
        md5 = _md5_in_outs(stage.get("outs"), os.path.join(folder, wdir), target)
        if md5:
            return md5
    return None


def _stage_wdirs(dvc_yaml: str) -> dict[str, str]:
    """Stage name -> wdir, for the stages of ``dvc.yaml`` that set a literal one."""
    if not os.path.isfile(dvc_yaml):
        return {}
    doc = _load_yaml(dvc_yaml)
    stages = doc.get("stages") if isinstance(doc, dict) else None
    if not isinstance(stages, dict):
        return {}
    wdirs = {}
    for name, stage in stages.items():
        if not isinstance(stage, dict):
            continue
        do = stage.get("do")
        wdir = stage.get("wdir") or (do.get("wdir") if isinstance(do, dict) else None)
        if isinstance(wdir, str) and "${" not in wdir:  # templated wdirs are not resolved
            wdirs[str(name)] = wdir
    return wdirs
