"""The redaction rules, in one place: nothing secret may reach MLflow.

Everything nbtrack writes that a user did not type as a param (environment, cell source, notebook
snapshot, git diff, remote URL) goes through here first. Two kinds of evidence are used:

- names: a variable, env var, param, query or config key whose name says "secret"
  (``DB_PASSWORD``, ``apiKey``, ``aws_secret_access_key``) has its value replaced;
- shapes: values whose format is a known credential (``ghp_...``, ``AKIA...``, JWTs, PEM private
  keys, ``user:password@`` in URLs) are replaced wherever they appear.

False positives are kept low on purpose: nbtrack logs sha256 digests and MLflow run ids (hex), and
ML code is full of "tokens" and "keys" that are not secrets (``max_tokens``, ``pad_token_id``,
``key_column``, ``jax.random.PRNGKey``). So a secret name alone is not enough: its value must look
like a value, not code (``password = getpass()``), a reference (``${DB_PASSWORD}``), a template
(``f"Bearer {token}"``) or the name of a dict key (``LABEL_KEY = "label"``). A redacted value is
replaced by ``REDACTED``; the name around it is kept so a reader sees what was hidden.

This is a heuristic net, not a proof: a secret with no telltale name or format (a bare password
in a comment) gets through. Pass known secret values as ``extra`` to catch those.

Regexes are compiled once, at import.
"""

# Over 400 lines: the text rules are one ordered pass (assignments, query strings, known token
# shapes, bearer and auth headers, command-line flags, anchored values) whose helpers share the
# patterns defined here; split, one algorithm would be scattered over modules. The names that say
# "secret" already live apart (secret_names.py), and so does the run's pass that applies these
# rules to everything nbtrack writes (redaction.py).

from __future__ import annotations

import contextvars
import re
from collections.abc import Callable, Iterable, Mapping

from nbtrack.capture.secret_names import _secret_words, is_secret_name, secret_values

__all__ = [
    "REDACTED",
    "is_secret_name",
    "redact_env",
    "redact_text",
    "redact_url",
    "secret_values",
]

REDACTED = "[REDACTED]"

# The values the rules replaced during the current redact_text call, when its caller asked for
# them (``found``): a value recognised once (a literal under a secret name) is then replaced
# verbatim wherever else it appears (capture.redaction). A context variable, because the rules
# are re.sub callbacks with no other way to report.
_found: contextvars.ContextVar[set[str] | None] = contextvars.ContextVar("found", default=None)
# Shorter values would blank ordinary words wherever they occur ("admin", "test").
MIN_KNOWN = 6


def _saw(value: str) -> None:
    found = _found.get()
    if found is not None and len(value) >= MIN_KNOWN and REDACTED not in value:
        found.add(value)


# --- shapes -----------------------------------------------------------------------------------
#
# Speed: redact_text runs over whole notebook snapshots (a MB is common). Python's regex engine
# only searches fast for a pattern that starts with a literal (or a small set of characters), so
# every pattern below starts with one or is tried only where a literal anchor was found
# (_sub_anchored), and word boundaries ("\b" at the start would force a slow scan) are checked
# in Python on the few candidates instead. About 30-40 ms per MB of code or prose.

# PEM private keys (also inside JSON strings, where newlines are "\n"). A block cut short (no END
# line, e.g. a truncated output) is redacted up to where its base64 stops.
_PEM = re.compile(
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----"
    r"(?:[^\"'`]{16,}?-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----"
    r"|(?:[A-Za-z0-9+/=:\s-]|\\n){16,})",
    re.DOTALL,
)

# scheme://user:password@host. The password may contain "@" (unencoded); the last "@" before the
# host wins, so no tail of it leaks.
_URL_USERINFO = re.compile(r"://(?P<user>[^\s:/?#@'\"<>]*):(?P<pw>[^\s/?#'\"<>]+)@")

# ?name=value / &name=value; the value is redacted when the name is secret.
_QUERY = re.compile(
    r"(?P<pre>[?&;](?P<name>[A-Za-z][A-Za-z0-9_.\-]{0,60})=)(?P<val>[^&#\s'\"<>;)\]]+)"
)
# Query keys that are secret by convention though not by name (Google ?key=, Azure SAS &sig=).
_QUERY_SECRET = frozenset({"key", "sig"})
# Keys of ";"-separated connection strings (ODBC, ADO.NET, JDBC) that hold a password though
# their name alone does not say so (a bare PWD is the working directory elsewhere).
_CONNECTION_SECRET = frozenset({"pwd"})

# Known token formats, replaced whole. Each starts with a distinctive prefix, so hex digests
# (sha256, MLflow run ids) can never match.
_TOKENS = [
    re.compile(p)
    for p in (
        r"(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b",  # AWS access key ids
        r"gh[pousr]_[A-Za-z0-9]{36,}\b",  # GitHub classic tokens
        r"github_pat_[A-Za-z0-9_]{22,}",  # GitHub fine-grained tokens
        r"glpat-[A-Za-z0-9_\-]{20,}",  # GitLab personal access tokens
        r"xox[abprs]-[A-Za-z0-9\-]{10,}",  # Slack tokens
        r"https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9_/\-]+",
        # OpenAI / Anthropic: sk-..., sk-proj-..., sk-ant-api03-...; a digit and a capital are
        # required so prose like "sk-learn-tutorial-for-beginners" survives.
        r"sk-(?=[A-Za-z0-9_\-]*[0-9])(?=[A-Za-z0-9_\-]*[A-Z])[A-Za-z0-9_\-]{20,}",
        r"sk_(?:live|test)_[A-Za-z0-9]{16,}",  # Stripe secret keys
        r"rk_(?:live|test)_[A-Za-z0-9]{16,}",  # Stripe restricted keys
        r"AIza[0-9A-Za-z_\-]{35}(?![0-9A-Za-z_\-])",  # Google API keys
        r"hf_[A-Za-z0-9]{30,}\b",  # Hugging Face tokens
        r"eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*",  # JWTs
        r"npm_[A-Za-z0-9]{36}\b",  # npm tokens
        r"pypi-AgE[A-Za-z0-9_\-]{50,}",  # PyPI API tokens
    )
]

# The value of an Authorization (or Proxy-Authorization) header, whatever its scheme.
_AUTH_HEADER = re.compile(
    r"(?P<pre>authorization\\?[\"']?[ \t]*[:=][ \t]*(?:[rRbBuUfF]{0,2}\\?[\"'])?"
    r"(?P<scheme>(?:bearer|token|basic|digest|negotiate)[ \t]+)?)"
    r"(?![{$\[])(?P<val>[^\s\"',;()\[\]{}\\]+)",
    re.IGNORECASE,
)
# "Bearer <tok>" / "token <tok>" anywhere, when <tok> looks random (has a digit), so prose
# ("bearer tokens", "token embeddings") survives.
_BEARER = re.compile(
    r"(?P<pre>(?P<word>[BbTt](?:earer|EARER|oken))[ \t]+)(?P<val>[\w\-.~+/]{8,}=*)"
)

# A string literal (also one inside a JSON string), and a list or tuple of them.
_STR = (
    r"[rRbBuUfF]{0,2}\"(?:[^\"\\\n]|\\.)*\"|[rRbBuUfF]{0,2}'(?:[^'\\\n]|\\.)*'"
    r"|\\\"(?:[^\"\\\n]|\\[^\"\n])*\\\""
)
_SEQ = rf"[\[(](?:\s*(?:{_STR})\s*,)*\s*(?:{_STR})\s*,?\s*[\])]"
_STR_RE = re.compile(_STR)

# Assignments of a secret-named variable or key, in code or config:
#   password = "hunter2"   api_key='...'   "secret": "..."   token: str = "..."
#   os.environ["API_KEY"] = "..."   aws_secret_access_key = wJalr.../...   AccountKey=...;
#   DB_PASSWORD=xyz   export DB_PASSWORD=xyz   !HF_TOKEN=abc python train.py   %env TOKEN=abc
# The match starts at a secret-ish word inside the name (see _HINT); the callback walks back to
# the start of the name, lets is_secret_name decide, then judges the value: references,
# placeholders, prose, code (`password = getpass()`) and key names (`LABEL_KEY = "label"`) stay.
_ASSIGN = re.compile(
    r"[kKtTsSpPcCaAdD](?i:ey|oken|ecret|ass|wd|red|uth|rivate|ession|ookie|ignature|sn)"
    r"[\w.\-]*(?P<q>\\?[\"'])?\]?"  # the rest of the name; a closing quote; a subscript's "]"
    r"(?P<ann>[ \t]*:[ \t]*[A-Za-z_][\w.\[\], |]{0,60}?)?"  # an annotation: `token: str = "..."`
    r"(?P<sp1>[ \t]*)(?P<op>:=|=(?!=)|:(?![:=]))(?P<sp2>[ \t]*)"
    r"(?P<val>[rRbBuUfF]{0,2}(?:\"\"\"[\s\S]*?\"\"\"|'''[\s\S]*?''')"  # triple-quoted
    r"|[rRbBuUfF]{0,2}\"(?:[^\"\\\n]|\\.)*\"|[rRbBuUfF]{0,2}'(?:[^'\\\n]|\\.)*'"
    r"|\\\"(?:[^\"\\\n]|\\[^\"\n])*\\\""  # a string inside a JSON string (notebook source)
    r"|\$\{\w+\}"  # a reference, kept by _keep_value
    rf"|{_SEQ}"  # a list or tuple of strings: a column's values, auth=(user, password)
    r"|[^\s'\"`,;(){}\[\]<>\\]+)"
)
# A command-line flag and its value: `--password hunter2`, `--api-key "abc"`.
_FLAG = re.compile(
    r"(?P<pre>--(?P<name>[A-Za-z][\w\-]{1,60})[ \t]+)"
    r"(?P<val>\"[^\"\n]*\"|'[^'\n]*'|[^\s'\"\-\\\[][^\s'\"\\]*)"
)
# Where _ASSIGN can start: a secret-ish word. Searched for in a lowercased copy of the text,
# which is several times faster than scanning for _ASSIGN's case-insensitive first letters.
_HINT = re.compile("key|token|secret|pass|pwd|cred|auth|private|session|cookie|signature|dsn")
_AUTH_ANCHOR = re.compile("authorization")
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
_ENV_PREFIXES = ("export", "%env", "%set_env", "set", "!")

_IDENT = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")
_NUMBER = re.compile(r"[+-]?(?:\d[\d_]*\.?\d*(?:[eE][+-]?\d+)?|\.\d+)")
# References and placeholders, with an optional auth scheme: `${DB_PASSWORD}`, `{{ secret }}`,
# f"Bearer {token}", "Bearer %s", `%(password)s`, `<your-token>`, `****`, `...`, or a bare
# scheme ("token " + server_token).
_REFERENCE = re.compile(
    r"(?i:bearer|token|basic)?\s*"
    r"(?:\$\{?\w+\}?|\{\{.*\}\}|\{[^{}]*\}|%(?:\(\w+\))?[sdr]|<[^<>]*>|\**|x+|X+|\.\.\.|…)\s*"
)
# Placeholders of a template or f-string; f"{run}-{step}" is built from variables, not a secret.
_PLACEHOLDER = re.compile(r"\{[^{}]*\}")
# A URL without credentials in it (those are redacted by the URL rule on their own).
_PLAIN_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^@\s/]*(?:[/?#]\S*)?")
# A word without digits: what a name with "key" in it holds when it names a dict key
# (`LABEL_KEY = "label"`, `cache_key="cachedTokenCount"`, `api_key = "unused"`) rather than a
# credential, which has digits.
_KEY_NAME_VALUE = re.compile(r"[A-Za-z][A-Za-z_.\-]{0,39}")
_ENV_NAME = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")
_KEYISH = frozenset({"key", "keys", "apikey", "apikeys"})
_KEYWORDS = frozenset(
    {"None", "True", "False", "null", "true", "false", "none", "nil", "yes", "no", "~", "NaN"}
)


def _keep_value(value: str) -> bool:
    """Values that are not secrets even under a secret name: empty, references, placeholders,
    prose, plain URLs."""
    # "[REDACTED" too: a value pattern that stops at "]" sees an earlier redaction that way.
    if not value or REDACTED[:-1] in value or value in _KEYWORDS or _REFERENCE.fullmatch(value):
        return True
    if not any(c.isalnum() for c in value):  # "; ", "-", " "
        return True
    if "\n" in value or len(value.split()) > 6:  # a message, not a secret (a PEM is caught apart)
        return True
    if _PLAIN_URL.fullmatch(value):
        return True
    # f"{parent}{sep}{k}", f"claude-{now}": the literal text left is too short to be a secret
    return "{" in value and len(_PLACEHOLDER.sub("", value)) < 8


def _squash(text: str) -> str:
    return "".join(c for c in text.lower() if c.isalnum())


def _keep_for_name(value: str, name: str) -> bool:
    """Values a secret-looking name may hold without them being secret."""
    if _keep_value(value):
        return True
    # A constant naming a key or a variable: API_KEY = "api_key", "client_secret": "clientSecret",
    # _JSON_PRIVATE_KEY = "private_key", CREDENTIALS = "GOOGLE_APPLICATION_CREDENTIALS" (an env
    # var's name).
    v, n = _squash(value), _squash(name)
    named = v in n or (n in v and _ENV_NAME.fullmatch(value) is not None)
    if named and len(v) >= 4 and not any(c.isdigit() for c in v):
        return True
    words = _secret_words(name)
    return all(w in _KEYISH for w in words) and _KEY_NAME_VALUE.fullmatch(value) is not None


def _unquoted_is_secret(value: str, following: str) -> bool:
    if value.endswith(":") and following in ("", "\n", " ", "\r"):
        value = value[:-1]  # `if token := self.token:`: the colon ends the statement
    if following in ("(", "[", "{") or _keep_value(value) or value.startswith((".", "%")):
        # a call, subscript or template: code, not a value (`os.environ["X"]`, `getpass()`,
        # `cookie={c}`); ".2f", "%r": format specs (f"{password:.2f}")
        return False
    if _NUMBER.fullmatch(value):
        return False  # timeouts, sizes; real numeric secrets are rare and short
    if _IDENT.fullmatch(value):
        # A bare name is code (`password = pw`, `token: str`, `key = layer_1out`); a long one
        # with digits is a config value (`password: hunter2hunter2`, an AWS secret without '/'),
        # an underscore makes it code unless it is as long as a token.
        return (
            "." not in value
            and len(value) >= 8
            and any(c.isdigit() for c in value)
            and ("_" not in value or len(value) >= 32)
        )
    # '/', '+', '-', '@'...: credential-shaped, unless too short to be one ("#", "?", "%r")
    return len(value) >= 6


def _word_start(s: str, i: int) -> bool:
    return i == 0 or not (s[i - 1].isalnum() or s[i - 1] == "_")


def _strip_quotes(value: str) -> tuple[str, str, str]:
    """Split ``f"abc"`` / ``\\"abc\\"`` into prefix-and-quote, contents, closing quote."""
    i = 0
    while value[i] not in "\"'":
        i += 1
    triple = value[i : i + 3]
    if triple in ('"""', "'''") and len(value) - i >= 6 and value.endswith(triple):
        return value[: i + 3], value[i + 3 : -3], triple
    close = 2 if value.endswith('\\"') and value[i - 1 : i] == "\\" else 1
    return value[: i + 1], value[i + 1 : -close], value[-close:]


def _env_style(s: str, start: int, name: str) -> bool:
    """NAME=value in a shell line, an env file or an INI file: the value is never code.

    Uppercase names count after a space or a shell separator too (`!A=1 DB_PASSWORD=x cmd`);
    other names only in column 0 or after `export`/`!`/`%env`, because an indented
    `password=pw,` is a keyword argument in code, left to the code rules, which tell a variable
    from a value.
    """
    if name.isupper() and (start == 0 or s[start - 1] in " \t;&!\"'"):
        return True
    if s.endswith("--", 0, start):  # a command-line flag: --password=x
        return True
    k = start
    for prefix in _ENV_PREFIXES:
        j = k
        while j > 0 and s[j - 1] in " \t":
            j -= 1
        if s.endswith(prefix, max(0, j - len(prefix)), j):
            k = j - len(prefix)
            while k > 0 and s[k - 1] in " \t":  # an indented `export` line is still shell
                k -= 1
            break
    return k == 0 or s[k - 1] == "\n"


def _sub_assign(m: re.Match[str]) -> str:
    s, start = m.string, m.start()
    quote = m.group("q")
    if quote:  # a quoted key: its name runs back to the opening quote, on the same line
        j = s.rfind(quote[-1], max(0, start - 60), start)
        if j < 0 or "\n" in s[j:start]:
            return m.group(0)
        name_start = j + 1
    else:
        name_start = start
        while name_start > 0 and start - name_start < 60 and s[name_start - 1] in _NAME_CHARS:
            name_start -= 1
        while s[name_start] in ".-":  # `--password=x`: the flag's dashes are not the name
            name_start += 1
        if s[name_start].isdigit():
            return m.group(0)
    name_end = m.start("q") if quote else (m.start("ann") if m.group("ann") else m.start("sp1"))
    name = s[name_start:name_end].rstrip("]")
    if not is_secret_name(name):
        return m.group(0)
    value = m.group("val")
    pre = s[start : m.start("val")]
    if value[0] in "[(":  # a list or tuple of strings
        return pre + _redact_sequence(value, name)
    if value.endswith(('"', "'")):  # a quoted value (the unquoted form holds no quotes)
        head, inner, tail = _strip_quotes(value)
        if _keep_for_name(inner, name):
            return m.group(0)
        _saw(inner)
        return f"{pre}{head}{REDACTED}{tail}"
    if m.group("op") == ":" and not quote and not m.group("sp2"):
        return m.group(0)  # `oauth:grant-type`, `host:port`: YAML needs a space after the colon
    following = s[m.end() : m.end() + 1]
    plain = not (quote or m.group("ann") or m.group("sp1") or m.group("sp2"))
    if plain and m.group("op") == "=" and _env_style(s, name_start, name):
        # a value, even one that looks like a name (`DB_PASSWORD=xyz`); not a dotted name
        # (`    API_KEY=settings.api_key,` is a keyword argument) nor a call
        dotted = "." in value and _IDENT.fullmatch(value) is not None
        secret = not (following in ("(", "[") or _keep_for_name(value, name) or dotted)
    else:
        secret = not _keep_for_name(value, name) and _unquoted_is_secret(value, following)
    if not secret:
        return m.group(0)
    _saw(value)
    return pre + REDACTED


# Names that hold a (user, password) pair: requests' auth=, HTTPBasicAuth's arguments.
_PAIR_WORDS = frozenset({"auth", "oauth", "authorization", "credentials", "creds"})


def _redact_sequence(value: str, name: str) -> str:
    """The strings of a list or tuple under a secret name redacted: a ``password`` column's
    values, the password of ``auth=("admin", "...")`` (its user stays readable)."""
    items = list(_STR_RE.finditer(value))
    pair = len(items) == 2 and set(_secret_words(name)) <= _PAIR_WORDS
    out, last = [], 0
    for i, item in enumerate(items):
        head, inner, tail = _strip_quotes(item.group(0))
        if (pair and i == 0) or _keep_for_name(inner, name):
            continue
        _saw(inner)
        out.append(value[last : item.start()] + head + REDACTED + tail)
        last = item.end()
    return "".join(out) + value[last:]


def _sub_query(m: re.Match[str]) -> str:
    name = m.group("name")
    value = m.group("val")
    if value.startswith(("{", "%")):  # a template: f"?token={token}", "?token=%s"
        return m.group(0)
    secret = name.lower() in _QUERY_SECRET or is_secret_name(name)
    secret = secret or (m.group("pre")[0] == ";" and name.lower() in _CONNECTION_SECRET)
    if secret and not _keep_value(value):
        _saw(value)
        return m.group("pre") + REDACTED
    return m.group(0)


def _sub_token(m: re.Match[str]) -> str:
    if not _word_start(m.string, m.start()):
        return m.group(0)
    _saw(m.group(0))
    return REDACTED


def _sub_bearer(m: re.Match[str]) -> str:
    value, word = m.group("val"), m.group("word").lower()
    if word not in ("bearer", "token") or not _word_start(m.string, m.start()):
        return m.group(0)  # the pattern's character classes also let "Tearer" through
    if not any(c.isdigit() for c in value):
        return m.group(0)
    if word == "token" and (len(value) < 16 or not any(c.isalpha() for c in value)):
        return m.group(0)  # "token" is a common word: ask more of what follows it
    _saw(value)
    return m.group("pre") + REDACTED


def _sub_auth_header(m: re.Match[str]) -> str:
    if not _word_start(m.string, m.start()):
        return m.group(0)
    value = m.group("val")
    if m.group("scheme"):  # "Bearer x": x is the credential, whatever it looks like
        secret = not _keep_value(value)
    else:  # no scheme: could be code (`authorization=get_header()`)
        secret = _unquoted_is_secret(value, m.string[m.end() : m.end() + 1])
    if not secret:
        return m.group(0)
    _saw(value)
    return m.group("pre") + REDACTED


def _sub_flag(m: re.Match[str]) -> str:
    value = m.group("val")
    if not is_secret_name(m.group("name")) or _keep_value(value.strip("\"'")):
        return m.group(0)
    quote = value[0] if value[0] in "\"'" else ""
    _saw(value.strip("\"'"))
    return f"{m.group('pre')}{quote}{REDACTED}{quote}"


def _sub_anchored(
    pattern: re.Pattern[str],
    anchor: re.Pattern[str],
    text: str,
    repl: Callable[[re.Match[str]], str],
) -> str:
    """``pattern.sub(repl, text)`` for matches that start where the lowercase ``anchor`` occurs
    (in any case). Same result for such patterns, much faster: ``anchor`` is searched in a
    lowercased copy as plain literals, instead of trying ``pattern`` at every letter."""
    low = text.lower()
    if len(low) == len(text):  # the same positions (lower() only ever lengthens, as "İ" does)
        starts = [m.start() for m in anchor.finditer(low)]
    else:
        starts = [m.start() for m in re.finditer(anchor.pattern, text, re.IGNORECASE)]
    if not starts:
        return text
    out: list[str] = []
    last = 0
    for start in starts:
        if start < last:
            continue
        m = pattern.match(text, start)
        if m is None:
            continue
        out.append(text[last:start])
        out.append(repl(m))
        last = m.end()
    out.append(text[last:])
    return "".join(out)


# The user's own MLflow calls with a secret-named key: mlflow.log_param("smtp_password", "..."),
# set_tag("deploy_token", '...'). MLflow stores the value as given (nbtrack cannot intercept
# it), but the cell's source in the snapshot need not hold it too.
_LOG_CALL = re.compile(
    r"(?P<pre>(?:log_param|set_tag)\(\s*(?P<name>" + _STR + r")\s*,\s*(?:value\s*=\s*)?)"
    r"(?P<val>" + _STR + r")"
)
_LOG_CALL_ANCHOR = re.compile("log_param|set_tag")


def _sub_log_call(m: re.Match[str]) -> str:
    _, name, _ = _strip_quotes(m.group("name"))
    head, inner, tail = _strip_quotes(m.group("val"))
    if not is_secret_name(name) or _keep_value(inner):
        return m.group(0)
    _saw(inner)
    return f"{m.group('pre')}{head}{REDACTED}{tail}"


def _sub_userinfo(m: re.Match[str]) -> str:
    _saw(m.group("pw"))
    return f"://{m.group('user')}:{REDACTED}@"


def _sub_pem(m: re.Match[str]) -> str:
    _saw(m.group(0))
    return REDACTED


def redact_text(text: str, extra: Iterable[str] = (), found: set[str] | None = None) -> str:
    """``text`` with secret-looking substrings replaced by ``REDACTED``.

    ``extra`` are literal strings to redact too, wherever they occur (typically
    ``secret_values()``, so an env secret pasted into a cell is caught whatever its shape).
    ``found``, if given, receives the values the rules replaced (of ``MIN_KNOWN`` characters or
    more), so a caller can redact them verbatim elsewhere.
    """
    # Longest first, so a secret that contains another is replaced whole.
    for literal in sorted({s for s in extra if s}, key=len, reverse=True):
        text = text.replace(literal, REDACTED)
    token = _found.set(found)
    try:
        return _apply_rules(text)
    finally:
        _found.reset(token)


def _apply_rules(text: str) -> str:
    # Substring checks skip whole scans on the (usual) text that has nothing for a pattern.
    if "PRIVATE KEY" in text:
        text = _PEM.sub(_sub_pem, text)
    if "://" in text:
        text = _URL_USERINFO.sub(_sub_userinfo, text)
    if "=" in text:
        text = _QUERY.sub(_sub_query, text)
    for pattern in _TOKENS:
        text = pattern.sub(_sub_token, text)
    text = _sub_anchored(_AUTH_HEADER, _AUTH_ANCHOR, text, _sub_auth_header)
    text = _BEARER.sub(_sub_bearer, text)
    text = _sub_anchored(_LOG_CALL, _LOG_CALL_ANCHOR, text, _sub_log_call)
    text = _sub_anchored(_ASSIGN, _HINT, text, _sub_assign)
    if "--" in text:
        text = _FLAG.sub(_sub_flag, text)
    return text


_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://\S*")
# Greedy up to the last "@" before the host: an unencoded "@" in a password must not leak its tail.
_HTTP_USERINFO = re.compile(r"^(?P<scheme>\s*https?://)[^/?#\s]*@", re.IGNORECASE)


def redact_url(url: str) -> str:
    """``url`` without credentials: password in the userinfo, secret query values, known tokens.

    For http(s) the whole userinfo goes (``https://user:ghp_x@github.com/o/r.git`` becomes
    ``https://github.com/o/r.git``): a user there only serves authentication, and the clean URL
    is one the MLflow UI can link to. Other schemes keep the user (``ssh://git@host``,
    ``postgres://u:[REDACTED]@h/db``). Anything that is not a ``scheme://`` URL (including scp-like
    ``git@github.com:o/r.git``, which holds no secret) is returned unchanged.
    """
    if not _URL.fullmatch(url.strip()):
        return url
    url = _HTTP_USERINFO.sub(r"\g<scheme>", url)
    return redact_text(url)


def redact_env(env: Mapping[str, str]) -> dict[str, str]:
    """A copy of ``env`` safe to log: secret-named variables blanked, other values redacted
    (``DATABASE_URL=postgres://u:p@h/db`` loses its password; a secret value copied into another
    variable is caught too)."""
    extra = secret_values(env)
    return {k: REDACTED if is_secret_name(k) else redact_text(v, extra) for k, v in env.items()}
