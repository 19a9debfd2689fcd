"""Code version: the git commit, branch, remote and uncommitted changes around a notebook.

This runs for every tracked cell, so it spends as few git processes as it can: one
``rev-parse`` (top level and git dir; also the "is this a repository" test), one ``status``
(commit, branch, dirtiness), and ``diff`` only when there is something to diff. The remote URL is
read from the repository's config file rather than asked of a third process.

Every call sets ``GIT_OPTIONAL_LOCKS=0`` (a plain ``git status`` refreshes the index and takes
its lock, which can make the user's own ``git commit`` in a terminal fail while a cell runs) and
has a timeout: a hung git (a network filesystem, a huge repository) must not hang the notebook.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from nbtrack.capture.redact import redact_url
from nbtrack.capture.redaction import Redactor

TIMEOUT = 5.0  # seconds, per git process

# The hash of the empty tree: in a repository with no commits yet, `git diff <it>` shows what
# `git diff HEAD` would. (SHA-1 repositories; in a SHA-256 one the diff is left empty.)
_EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"


@dataclass(frozen=True)
class GitState:
    root: str  # the repository's top level
    commit: str | None  # None in a repository with no commits yet
    branch: str | None  # None when HEAD is detached
    repo_url: str | None  # remote "origin" (else the first remote), credentials removed
    dirty: bool  # tracked files modified, staged or not; untracked files do not count
    diff: str  # `git diff HEAD` of tracked files when dirty, else ""; secrets redacted


def run_git(cwd: str, *args: str, timeout: float = TIMEOUT) -> str | None:
    """stdout of a git command, or None if git is missing, fails or times out."""
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0"}
    try:
        done = subprocess.run(
            ["git", "-C", cwd, *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            env=env,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):  # OSError: no git on PATH
        return None
    if done.returncode != 0:
        return None
    # A diff can hold any bytes (a Latin-1 source file); never fail on decoding.
    return done.stdout.decode("utf-8", errors="replace")


_SECTION = re.compile(r'\s*\[\s*([A-Za-z0-9.-]+)(?:\s+"((?:[^"\\]|\\.)*)")?\s*\]\s*(.*)$')
_ENTRY = re.compile(r"\s*([A-Za-z][A-Za-z0-9-]*)\s*=\s*(.*)$")


def _config_value(raw: str) -> str:
    """A git config value: quotes removed, escapes resolved, a trailing comment and unquoted
    trailing spaces dropped (quoted spaces are part of the value)."""
    out: list[str] = []
    keep = 0  # length of out up to the last character that is not unquoted whitespace
    quoted, i = False, 0
    while i < len(raw):
        c = raw[i]
        if c == "\\" and i + 1 < len(raw):
            out.append({"n": "\n", "t": "\t", "b": "\b"}.get(raw[i + 1], raw[i + 1]))
            keep = len(out)
            i += 2
            continue
        if c == '"':
            quoted = not quoted
        elif c in "#;" and not quoted:
            break
        else:
            out.append(c)
            if quoted or not c.isspace():
                keep = len(out)
        i += 1
    return "".join(out[:keep])


def _remote_urls(config_text: str) -> dict[str, str]:
    """``{remote name: url}`` from a git config file, in file order (first url per remote)."""
    urls: dict[str, str] = {}
    remote: str | None = None
    for line in config_text.splitlines():
        section = _SECTION.match(line)
        if section:
            name, sub, rest = section.groups()
            if name.lower() == "remote" and sub is not None:
                remote = sub
            elif name.lower().startswith("remote.") and sub is None:  # old `[remote.origin]`
                remote = name[len("remote.") :]
            else:
                remote = None
            line = rest  # `[remote "o"] url = x` is legal, if rare
        entry = _ENTRY.match(line)
        if remote is not None and entry and entry.group(1).lower() == "url":
            urls.setdefault(remote, _config_value(entry.group(2)))
    return urls


def _repo_url(common_dir: str) -> str | None:
    try:
        text = Path(common_dir, "config").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    urls = _remote_urls(text)
    url = urls.get("origin") or next(iter(urls.values()), None)
    return redact_url(url) if url else None


def _redacted(raw: str) -> str:
    # The redaction pass caches its rules' result by digest: cells run one after another on an
    # unchanged dirty tree log the same diff, and a large one (a notebook's outputs are in it)
    # takes far longer to redact than to hash. What it recognises is known to later runs.
    return Redactor().text(raw)


def git_state(path: str | os.PathLike[str]) -> GitState | None:
    """The git state of the repository holding ``path`` (a file or a directory in it).

    None when ``path`` is not in a git work tree (or does not exist), or git is not installed,
    fails or times out.
    """
    where = Path(path)
    if not where.is_dir():
        where = where.parent
    if not where.is_dir():
        return None
    cwd = str(where)

    located = run_git(cwd, "rev-parse", "--show-toplevel", "--git-common-dir")
    if located is None:
        return None
    lines = located.splitlines()
    if len(lines) < 2 or not lines[0]:
        return None  # a bare repository, or inside .git: no work tree
    root, common_dir = lines[0], os.path.join(cwd, lines[1])  # git-common-dir may be relative

    status = run_git(root, "status", "--porcelain=v2", "--branch", "--untracked-files=no")
    if status is None:
        return None
    commit = branch = None
    dirty = False
    for line in status.splitlines():
        if line.startswith("# branch.oid "):
            oid = line[len("# branch.oid ") :]
            commit = None if oid == "(initial)" else oid
        elif line.startswith("# branch.head "):
            head = line[len("# branch.head ") :]
            branch = None if head == "(detached)" else head
        elif line[:2] in ("1 ", "2 ", "u "):  # changed, renamed/copied, unmerged entries
            dirty = True

    diff = ""
    if dirty:
        against = commit or _EMPTY_TREE
        raw = run_git(
            root,
            "-c",
            "core.quotepath=off",
            "diff",
            "--no-color",
            "--no-ext-diff",
            "--no-textconv",
            against,
            "--",  # `against` is a revision even if a file has that name
        )
        diff = _redacted(raw) if raw else ""

    return GitState(
        root=root,
        commit=commit,
        branch=branch,
        repo_url=_repo_url(common_dir),
        dirty=dirty,
        diff=diff,
    )
