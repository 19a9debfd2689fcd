"""git_state against real repositories made with the git command in tmp_path."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from nbtrack.capture.git import GitState, git_state
from nbtrack.capture.redact import REDACTED

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

TOKEN = "ghp_" + "aB3dE5fG7hJ9kL1mN2pQ4rS6tU8vW0xYz5Zz"  # assembled: no literal token in the file


@pytest.fixture(autouse=True)
def _isolated_git(monkeypatch, tmp_path):
    # Discovery must not climb out of tmp_path into a repository around it, and the user's
    # global config (default branch, signing, hooks) must not change what the tests see.
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def make_repo(path: Path, commit: bool = True) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "Test User")
    git(path, "config", "user.email", "test@example.com")
    git(path, "config", "commit.gpgsign", "false")
    if commit:
        (path / "train.py").write_text("lr = 0.1\n")
        (path / "nb").mkdir()
        (path / "nb" / "train.ipynb").write_text("{}\n")
        git(path, "add", ".")
        git(path, "commit", "-q", "-m", "first")
    return path


def test_clean_repository(tmp_path):
    repo = make_repo(tmp_path / "repo")
    state = git_state(repo / "nb" / "train.ipynb")  # a file in a subdirectory
    assert state == GitState(
        root=str(repo.resolve()),
        commit=git(repo, "rev-parse", "HEAD"),
        branch="main",
        repo_url=None,
        dirty=False,
        diff="",
    )


def test_directory_path_gives_the_same_state(tmp_path):
    repo = make_repo(tmp_path / "repo")
    assert git_state(repo / "nb") == git_state(repo / "nb" / "train.ipynb")
    assert git_state(str(repo)) == git_state(repo / "train.py")


def test_not_a_repository(tmp_path):
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "x.ipynb").write_text("{}")
    assert git_state(tmp_path / "plain" / "x.ipynb") is None
    assert git_state(tmp_path / "plain") is None


def test_missing_path(tmp_path):
    assert git_state(tmp_path / "nowhere" / "x.ipynb") is None


def test_inside_the_git_directory_is_not_a_work_tree(tmp_path):
    repo = make_repo(tmp_path / "repo")
    assert git_state(repo / ".git") is None


def test_git_not_installed(tmp_path, monkeypatch):
    repo = make_repo(tmp_path / "repo")
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert git_state(repo) is None


def test_modified_file_is_dirty_with_its_diff(tmp_path):
    repo = make_repo(tmp_path / "repo")
    (repo / "train.py").write_text("lr = 0.2\n")
    state = git_state(repo)
    assert state.dirty
    assert "-lr = 0.1" in state.diff and "+lr = 0.2" in state.diff
    assert state.diff.startswith("diff --git a/train.py b/train.py")


def test_staged_change_is_dirty_and_in_the_diff(tmp_path):
    repo = make_repo(tmp_path / "repo")
    (repo / "train.py").write_text("lr = 0.3\n")
    git(repo, "add", "train.py")
    state = git_state(repo)
    assert state.dirty
    assert "+lr = 0.3" in state.diff


def test_staged_and_unstaged_changes_both_show(tmp_path):
    repo = make_repo(tmp_path / "repo")
    (repo / "train.py").write_text("lr = 0.3\n")
    git(repo, "add", "train.py")
    (repo / "nb" / "train.ipynb").write_text('{"cells": []}\n')
    diff = git_state(repo).diff
    assert "+lr = 0.3" in diff and '+{"cells": []}' in diff


def test_untracked_files_do_not_make_it_dirty(tmp_path):
    repo = make_repo(tmp_path / "repo")
    (repo / "scratch.py").write_text("print('hi')\n")
    state = git_state(repo)
    assert not state.dirty
    assert state.diff == ""


def test_deleted_file_is_dirty(tmp_path):
    repo = make_repo(tmp_path / "repo")
    (repo / "train.py").unlink()
    state = git_state(repo)
    assert state.dirty and "-lr = 0.1" in state.diff


def test_diff_is_redacted(tmp_path):
    repo = make_repo(tmp_path / "repo")
    (repo / "train.py").write_text(f'lr = 0.1\npassword = "hunter2hunter2"\ngh = "{TOKEN}"\n')
    diff = git_state(repo).diff
    assert "hunter2hunter2" not in diff and TOKEN not in diff
    assert f'+password = "{REDACTED}"' in diff


def test_diff_redacts_values_of_secret_env_vars(tmp_path, monkeypatch):
    repo = make_repo(tmp_path / "repo")
    monkeypatch.setenv("NBTRACK_TEST_DB_PASSWORD", "plain-looking-value-42")
    (repo / "train.py").write_text("lr = 0.1\nprint('plain-looking-value-42')\n")
    diff = git_state(repo).diff
    assert "plain-looking-value-42" not in diff
    assert f"+print('{REDACTED}')" in diff


def test_no_commits_yet(tmp_path):
    repo = make_repo(tmp_path / "fresh", commit=False)
    state = git_state(repo)
    assert state == GitState(
        root=str(repo.resolve()), commit=None, branch="main", repo_url=None, dirty=False, diff=""
    )


def test_no_commits_yet_with_staged_files(tmp_path):
    repo = make_repo(tmp_path / "fresh", commit=False)
    (repo / "train.py").write_text("lr = 0.5\n")
    git(repo, "add", "train.py")
    (repo / "train.py").write_text("lr = 0.6\n")  # and changed again after staging
    state = git_state(repo)
    assert state.commit is None and state.dirty
    assert "+lr = 0.6" in state.diff  # what `git diff HEAD` would show: the work tree


def test_detached_head(tmp_path):
    repo = make_repo(tmp_path / "repo")
    first = git(repo, "rev-parse", "HEAD")
    (repo / "train.py").write_text("lr = 0.2\n")
    git(repo, "commit", "-q", "-am", "second")
    git(repo, "checkout", "-q", "--detach", first)
    state = git_state(repo)
    assert state.branch is None
    assert state.commit == first
    assert not state.dirty


def test_other_branch(tmp_path):
    repo = make_repo(tmp_path / "repo")
    git(repo, "checkout", "-q", "-b", "feature/tuning")
    assert git_state(repo).branch == "feature/tuning"


def test_remote_url_has_no_token(tmp_path):
    repo = make_repo(tmp_path / "repo")
    git(repo, "remote", "add", "origin", f"https://user:{TOKEN}@github.com/o/r.git")
    state = git_state(repo)
    assert state.repo_url == "https://github.com/o/r.git"
    assert TOKEN not in repr(state)


def test_remote_url_token_as_user(tmp_path):
    repo = make_repo(tmp_path / "repo")
    git(repo, "remote", "add", "origin", f"https://{TOKEN}@github.com/o/r.git")
    assert git_state(repo).repo_url == "https://github.com/o/r.git"


def test_origin_is_preferred_over_other_remotes(tmp_path):
    repo = make_repo(tmp_path / "repo")
    git(repo, "remote", "add", "upstream", "https://github.com/up/r.git")
    git(repo, "remote", "add", "origin", "git@github.com:me/r.git")
    assert git_state(repo).repo_url == "git@github.com:me/r.git"


def test_first_remote_when_there_is_no_origin(tmp_path):
    repo = make_repo(tmp_path / "repo")
    git(repo, "remote", "add", "upstream", "ssh://git@example.com/up/r.git")
    git(repo, "remote", "add", "zeta", "https://example.com/z/r.git")
    assert git_state(repo).repo_url == "ssh://git@example.com/up/r.git"


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/o/r;v=1.git",  # git quotes values with ";" or "#" when writing
        "https://example.com/o/r#frag.git",
        "/srv/git/team repo.git",
        ' "quoted" path',
    ],
)
def test_remote_url_read_from_config_matches_git(tmp_path, url):
    repo = make_repo(tmp_path / "repo")
    git(repo, "remote", "add", "origin", url)
    config = (repo / ".git" / "config").read_text()
    got = subprocess.run(
        ["git", "-C", str(repo), "remote", "get-url", "origin"], capture_output=True, text=True
    ).stdout.rstrip("\n")
    assert got == url  # git itself reads back what it wrote...
    assert git_state(repo).repo_url == url, config  # ...and so does nbtrack


def test_worktree_reads_the_shared_config(tmp_path):
    repo = make_repo(tmp_path / "repo")
    git(repo, "remote", "add", "origin", "https://github.com/o/r.git")
    git(repo, "worktree", "add", "-q", "-b", "exp", str(tmp_path / "wt"))
    state = git_state(tmp_path / "wt" / "train.py")
    assert state.root == str((tmp_path / "wt").resolve())
    assert state.branch == "exp"
    assert state.repo_url == "https://github.com/o/r.git"
    assert state.commit == git(repo, "rev-parse", "HEAD")


def test_path_with_spaces(tmp_path):
    repo = make_repo(tmp_path / "my projects" / "deep learning")
    (repo / "nb" / "my notebook.ipynb").write_text("{}\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "nb")
    (repo / "nb" / "my notebook.ipynb").write_text('{"a": 1}\n')
    state = git_state(repo / "nb" / "my notebook.ipynb")
    assert state.root == str(repo.resolve())
    assert state.dirty
    assert "b/nb/my notebook.ipynb" in state.diff


def test_status_does_not_rewrite_the_index(tmp_path):
    # A plain `git status` refreshes stat info and rewrites .git/index under its lock; with
    # GIT_OPTIONAL_LOCKS=0 it must leave the index alone (the user may be committing).
    repo = make_repo(tmp_path / "repo")
    time.sleep(1.1)  # so the new mtime differs at git's timestamp resolution
    os.utime(repo / "train.py")  # stat-dirty, content unchanged
    index = repo / ".git" / "index"
    before = index.read_bytes()
    state = git_state(repo)
    assert not state.dirty
    assert index.read_bytes() == before
