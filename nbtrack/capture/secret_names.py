"""Which names say "secret": an env var, variable, param, column or config key.

Part of the redaction rules (``nbtrack.capture.redact``, whose docstring says why a name alone
is not enough); here only the name test and the values of secret-named environment variables.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping

# A name part that is a secret on its own.
_SECRET_WORDS = frozenset(
    {
        "secret",
        "secrets",
        "password",
        "passwords",
        "passwd",
        "passphrase",
        "credential",
        "credentials",
        "creds",
        "auth",
        "oauth",
        "authorization",
        "private",
        "cookie",
        "cookies",
        "signature",
        "dsn",  # Sentry-style DSNs carry a key in the URL
        "apikey",
        "apikeys",
        "accesskey",
        "secretkey",
        "privatekey",
        "sessionid",
        "sessiontoken",
        "accesstoken",
        "refreshtoken",
        "authtoken",
        "bearertoken",
        "clientsecret",
    }
)
# Glued lowercase compounds (``dbpassword``, ``githubtoken``) are caught by their ending.
_SECRET_ENDINGS = ("password", "passwd", "secret", "token", "apikey", "accesskey", "secretkey")
_NOT_SECRET_COMPOUNDS = frozenset({"subtoken", "pretoken", "detoken", "oldpwd"})

# Words before ``key`` that make it a data-structure key, not a credential.
_KEY_NEUTRAL = frozenset(
    {
        "primary",
        "foreign",
        "sort",
        "partition",
        "group",
        "join",
        "rng",
        "prng",
        "random",
        "jax",
        "seed",
        "sub",
        "dict",
        "cache",
        "lookup",
        "hash",
        "label",
        "text",
        "image",
        "input",
        "output",
        "target",
        "metric",
        "monitor",
        "column",
        "index",
        "row",
        "hot",
        "shortcut",
        "batch",
        "feature",
        "field",
        "attr",
        "map",
        "meta",
        "metadata",
        "config",
        "state",
        "data",
        "composite",
        "unique",
        "natural",
        "surrogate",
        "range",
        "shard",
        "routing",
        "bucket",
        "object",
        "s3",
        "blob",
        "dedup",
        "public",  # a public key is not a secret
        # names of things that have keys: `TASK_KEY = "train"`, `_MODEL_TYPE_KEY = "model_type"`
        "task",
        "job",
        "run",
        "step",
        "node",
        "item",
        "entry",
        "record",
        "table",
        "tag",
        "param",
        "event",
        "model",
        "layer",
        "sample",
        "split",
        "dataset",
        "doc",
        "query",
        "result",
        "context",
        "section",
        "stage",
        "resource",
        "property",
        "type",
        "format",
        "binary",
        "usage",
        "name",
    }
)
# Words before ``token`` that make it a tokenizer's token (``pad_token``), not a credential.
_TOKEN_NEUTRAL = frozenset(
    {
        "page",  # pagination cursors
        "pad",
        "eos",
        "bos",
        "unk",
        "sep",
        "cls",
        "mask",
        "special",
        "start",
        "end",
        "stop",
        "max",
        "min",
        "num",
        "n",
        "first",
        "last",
        "next",
        "prev",
        "new",
        "decoder",
        "encoder",
        "image",
        "text",
        "vision",
        "audio",
        "class",
    }
)
# Words before ``pass`` that make it a pass over data (``first_pass``), not a password.
_PASS_NEUTRAL = frozenset(
    {"first", "second", "single", "multi", "forward", "backward", "n", "num", "one", "two", "by"}
)
# Words after the last secret word that make the name describe the secret rather than hold it:
# ``KEY_COLUMN``, ``token_path``, ``PASSWORD_STORE_DIR``, ``SSH_AUTH_SOCK``.
_DESCRIPTORS = frozenset(
    {
        "type",
        "types",
        "kind",
        "method",
        "mode",
        "count",
        "counts",
        "len",
        "length",
        "size",
        "bits",
        "limit",
        "index",
        "idx",
        "column",
        "columns",
        "col",
        "cols",
        "field",
        "fields",
        "name",
        "names",
        "path",
        "paths",
        "file",
        "files",
        "filename",
        "dir",
        "directory",
        "url",
        "uri",
        "endpoint",
        "host",
        "enabled",
        "required",
        "provider",
        "fn",
        "func",
        "function",
        "order",
        "format",
        "header",
        "prefix",
        "expires",
        "expiry",
        "expiration",
        "ttl",
        "timeout",
        "sock",
        "socket",
        "env",
        "var",
        "store",
        "manager",
        "cmd",
        "command",
        "helper",
        "prompt",
        "policy",
        "user",
        "username",
        "login",
        "config",
        "configuration",
        "settings",
        "options",
        "kwargs",
        "params",
        "info",
        "scheme",
        "resource",
        "encoding",
        "source",
        "regex",
        "pattern",
    }
)
# ``token_id`` / ``pad_token_ids`` are vocabulary indices; ``key_id`` / ``session_id`` are secret.
_TOKEN_DESCRIPTORS = frozenset({"id", "ids"})

_CAMEL_1 = re.compile(r"([a-z0-9])([A-Z])")
_CAMEL_2 = re.compile(r"([A-Z]+)([A-Z][a-z])")
_PART_SPLIT = re.compile(r"[^A-Za-z0-9]+")


def _parts(name: str) -> list[str]:
    spaced = _CAMEL_2.sub(r"\1_\2", _CAMEL_1.sub(r"\1_\2", name))
    return [p for p in _PART_SPLIT.split(spaced.lower()) if p]


def _secret_part(parts: list[str], i: int) -> bool:
    part = parts[i]
    prev = parts[i - 1] if i else ""
    nxt = parts[i + 1] if i + 1 < len(parts) else ""
    if part in _SECRET_WORDS:
        return True
    if part in ("key", "keys"):
        return prev not in _KEY_NEUTRAL
    if part == "token":
        return prev not in _TOKEN_NEUTRAL and nxt not in _TOKEN_DESCRIPTORS
    if part == "pwd":  # PWD alone is the working directory; DB_PWD is a password
        return len(parts) > 1
    if part == "pass":  # DB_PASS, SMTP_PASS; but first_pass, n_pass, pass_rate
        return bool(prev) and prev not in _PASS_NEUTRAL and i == len(parts) - 1
    if part == "session":
        return nxt == "id"
    if part in _NOT_SECRET_COMPOUNDS:
        return False
    return part.endswith(_SECRET_ENDINGS) or (part.endswith("pwd") and len(part) > 3)


@functools.lru_cache(maxsize=4096)
def _secret_words(name: str) -> tuple[str, ...]:
    """The parts of ``name`` that make it secret; empty if it is not."""
    parts = _parts(name)
    if parts in (["key"], ["keys"]):  # a dict, sort or PRNG key; `?key=` in URLs is handled apart
        return ()
    hits = [i for i in range(len(parts)) if _secret_part(parts, i)]
    if not hits or any(p in _DESCRIPTORS for p in parts[hits[-1] + 1 :]):
        return ()
    return tuple(parts[i] for i in hits)


def is_secret_name(name: str) -> bool:
    """True if ``name`` (an env var, variable, param or config key) looks like it holds a secret.

    Case-insensitive; split into word parts on ``_ - .``, spaces and camelCase. Deliberately not
    secret: ``PWD``/``OLDPWD`` (directories), ``AUTHOR``, ``KEYBOARD``, ``MONKEY``,
    ``TOKENIZERS_PARALLELISM``, ``tokens``/``max_tokens``, ``pad_token_id``, a variable called just
    ``key`` (a dict, sort or PRNG key), ``KEY_COLUMN``/``token_path`` (names that describe a
    secret rather than hold it).
    """
    return bool(_secret_words(name))


def secret_values(env: Mapping[str, str] | None = None) -> list[str]:
    """Values of secret-named environment variables (default ``os.environ``), longest first.

    Only values of 8 characters or more: shorter ones ("1", "true", "dev") would blank out
    ordinary text everywhere they occur.
    """
    env = os.environ if env is None else env
    values = {v for k, v in env.items() if len(v) >= 8 and is_secret_name(k)}
    return sorted(values, key=lambda v: (-len(v), v))
