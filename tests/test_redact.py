"""Redaction: every secret kind nbtrack knows, and the look-alikes that must survive.

Fake credentials are assembled at run time (``"ghp_" + ...``) so this file holds no string that a
secret scanner would flag on push; they have the exact shape of the real thing.
"""

from __future__ import annotations

import json

import pytest

from nbtrack.capture.redact import (
    REDACTED,
    is_secret_name,
    redact_env,
    redact_text,
    redact_url,
    secret_values,
)

ALNUM = "aB3dE5fG7hJ9kL1mN2pQ4rS6tU8vW0xYz5"  # 34 mixed characters, digits and capitals

AWS_KEY_ID = "AKIA" + "IOSFODNN7EXAMPLE"  # AWS's documented example id
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCYEXAMPLEKEY"
GITHUB = "ghp_" + ALNUM + "Zz"  # 36 after the prefix
GITHUB_APP = "ghs_" + ALNUM + "Qq"
GITHUB_PAT = "github_pat_" + "11ABCDEFG0" + ALNUM + "_" + ALNUM
GITLAB = "glpat-" + "xY1-zW2_" + ALNUM[:14]
SLACK = "xoxb-" + "123456789012-1234567890123-" + ALNUM[:24]
OPENAI = "sk-proj-" + ALNUM + "-" + ALNUM
OPENAI_LEGACY = "sk-" + ALNUM + ALNUM[:14]
ANTHROPIC = "sk-ant-api03-" + ALNUM * 2 + "-" + ALNUM + "AA"
STRIPE = "sk_live_" + ALNUM[:24]
STRIPE_RESTRICTED = "rk_live_" + ALNUM[:24]
GOOGLE = "AIza" + "SyA" + ALNUM[:32]
HUGGINGFACE = "hf_" + ALNUM
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    ".eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIn0"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
SHA256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
RUN_ID = "0f3c5a9e2b7d4e1f8a6c3b9d2e7f1a4c"
PEM_BODY = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7" + ALNUM


# --- names --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "API_KEY",
        "api_key",
        "apiKey",
        "ApiKey",
        "apikey",
        "OPENAI_API_KEY",
        "WANDB_API_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "aws_secret_access_key",
        "AWS_SESSION_TOKEN",
        "GITHUB_TOKEN",
        "githubToken",
        "HF_TOKEN",
        "token",
        "access_token",
        "MLFLOW_TRACKING_PASSWORD",
        "MLFLOW_TRACKING_TOKEN",
        "password",
        "dbPassword",
        "dbpassword",
        "DB_PASSWD",
        "DB_PWD",
        "SMTP_PASS",
        "client_secret",
        "SECRET",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "creds",
        "AUTH",
        "auth-token",
        "Authorization",
        "X-Api-Key",
        "PRIVATE_KEY",
        "private",
        "SESSION_ID",
        "sessionId",
        "COOKIE",
        "SIGNATURE",
        "X-Amz-Signature",
        "SENTRY_DSN",
        "config.password",
        "spring.datasource.password",
        "API_KEY_V2",
        "AccountKey",
    ],
)
def test_secret_names(name):
    assert is_secret_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "PATH",
        "HOME",
        "PWD",
        "OLDPWD",
        "AUTHOR",
        "author_email",
        "KEYBOARD",
        "monkey",
        "MONKEY_PATCH",
        "TOKENIZER",
        "tokenizer",
        "TOKENIZERS_PARALLELISM",
        "tokens",
        "max_tokens",
        "max_new_tokens",
        "pad_token",
        "pad_token_id",
        "eos_token_id",
        "token_ids",
        "key",  # a dict key, a sort key, a PRNG key
        "keys",
        "KEY_COLUMN",
        "key_column",
        "sort_key",
        "rng_key",
        "primary_key",
        "label_key",
        "s3_key",
        "public_key",
        "token_path",
        "PASSWORD_STORE_DIR",
        "SSH_AUTH_SOCK",
        "AUTH_TYPE",
        "secret_name",
        "session",
        "first_pass",
        "lr",
        "batch_size",
        "CUDA_VISIBLE_DEVICES",
        "MLFLOW_TRACKING_USERNAME",
        "MLFLOW_TRACKING_URI",
        "JPY_SESSION_NAME",
    ],
)
def test_names_that_are_not_secret(name):
    assert not is_secret_name(name)


def test_secret_values_are_long_values_of_secret_named_vars_longest_first():
    env = {
        "HF_TOKEN": HUGGINGFACE,
        "DB_PASSWORD": "hunter2hunter2",
        "API_KEY": "short",  # under 8 characters: would blank ordinary text
        "HOME": "/home/someone",
        "PWD": "/work/main/notebooks",
    }
    assert secret_values(env) == [HUGGINGFACE, "hunter2hunter2"]


def test_secret_values_reads_os_environ_by_default(monkeypatch):
    monkeypatch.setenv("NBTRACK_TEST_SECRET_TOKEN", "tok-1234567890")
    assert "tok-1234567890" in secret_values()


# --- shapes -------------------------------------------------------------------------------------


SECRET_CASES = [
    (f"aws_access_key_id = {AWS_KEY_ID}", AWS_KEY_ID),
    (f"key id in a log line: {AWS_KEY_ID}.", AWS_KEY_ID),
    ("ASIA" + "Y34FZKBOKMUTVV7A" + " (temporary)", "ASIAY34FZKBOKMUTVV7A"),
    (f"[default]\naws_secret_access_key = {AWS_SECRET}\n", AWS_SECRET),
    (f"AWS_SECRET_ACCESS_KEY={AWS_SECRET}", AWS_SECRET),
    (f"aws_secret_access_key: {AWS_SECRET}", AWS_SECRET),
    (f"git clone https://{GITHUB}@github.com/o/r.git", GITHUB),
    (f"g = Github('{GITHUB_APP}')", GITHUB_APP),
    (f"client = Github({GITHUB_PAT!r})", GITHUB_PAT),
    (f"gl = gitlab.Gitlab(url, private_token='{GITLAB}')", GITLAB),
    (f"WebClient({SLACK!r})", SLACK),
    (f"client = OpenAI('{OPENAI}')", OPENAI),
    (f"openai.api_base, k = url, '{OPENAI_LEGACY}'", OPENAI_LEGACY),
    (f'Anthropic("{ANTHROPIC}")', ANTHROPIC),
    (f"stripe.set_key('{STRIPE}')", STRIPE),
    (f"stripe.set_key('{STRIPE_RESTRICTED}')", STRIPE_RESTRICTED),
    (f"https://maps.googleapis.com/maps/api/geocode/json?address=x&key={GOOGLE}", GOOGLE),
    (f"genai.configure({GOOGLE!r})", GOOGLE),
    (f"login('{HUGGINGFACE}')", HUGGINGFACE),
    (f"session cookie: {JWT}", JWT),
    (f"requests.get(u, headers={{'Authorization': 'Bearer {JWT}'}})", JWT),
    ("Authorization: Bearer abc.DEF-ghi_123", "abc.DEF-ghi_123"),
    ("authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
    ("curl -H 'Bearer 8f1cB2d9e0aa4c77'", "8f1cB2d9e0aa4c77"),
    ('-H "Authorization: token 0123456789abcdef0123"', "0123456789abcdef0123"),
    ("use token 9aF3kQ7zX1mB5nC8vL2d to log in", "9aF3kQ7zX1mB5nC8vL2d"),
    ("engine = create_engine('postgresql://ml:s3cr3t@db:5432/runs')", "s3cr3t"),
    ("mongodb+srv://admin:p@ss:word@cluster0.example.net/db", "p@ss:word"),
    ("https://x.blob.core.windows.net/c/f?sv=2022-11-02&sig=AbC%2Fd3F%3D", "AbC%2Fd3F%3D"),
    ("https://api.example.com/v1?access_token=t0k3nValue&page=2", "t0k3nValue"),
    ("https://example.com/login?user=me&password=hunter2", "hunter2"),
    ("https://hooks.slack.com/services/T0000/B0000/" + ALNUM[:24], ALNUM[:24]),
    ('password = "hunter2hunter2"', "hunter2hunter2"),
    ("api_key='abc123'", "abc123"),
    ('{"secret": "shh-it-is-a-secret", "name": "run"}', "shh-it-is-a-secret"),
    ("DB_PASSWORD=xyz", "xyz"),
    ("export DB_PASSWORD=correcthorse", "correcthorse"),
    ("!WANDB_API_KEY=0f3c5a9e2b7d4e1f8a6c python train.py", "0f3c5a9e2b7d4e1f8a6c"),
    ("%env MLFLOW_TRACKING_PASSWORD=letmein", "letmein"),
    ("token: str = 'typed-token'", "typed-token"),
    ('os.environ["SERVICE_API_KEY"] = "a8f5f167f44f4964e6c9"', "a8f5f167f44f4964e6c9"),
    ("cfg.db.password = 'pw-in-attr'", "pw-in-attr"),
    ("database:\n  password: hunter2hunter2\n", "hunter2hunter2"),
    ("X-Api-Key: 1f2e3d4c5b6a", "1f2e3d4c5b6a"),
    ("AccountName=acct;AccountKey=Zm9v+YmFy/YmF6==;EndpointSuffix=core", "Zm9v+YmFy/YmF6=="),
    ('token = """tok-3f9a2b1c"""', "tok-3f9a2b1c"),
    ("api_key = b'bytes-Secret-42'", "bytes-Secret-42"),
    ("!python train.py --password=hunter2 --lr 0.1", "hunter2"),
    ("!python train.py --api-key 'abc def' --epochs 3", "abc def"),
    ("!mlflow server --host 0.0.0.0 --token abc123", "abc123"),
]


@pytest.mark.parametrize(("text", "secret"), SECRET_CASES)
def test_redacts_secret(text, secret):
    out = redact_text(text)
    assert secret not in out
    assert REDACTED in out


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('password = "hunter2"', f'password = "{REDACTED}"'),
        ("api_key='x1'", f"api_key='{REDACTED}'"),
        ('{"secret": "abc"}', f'{{"secret": "{REDACTED}"}}'),
        ("DB_PASSWORD=xyz", f"DB_PASSWORD={REDACTED}"),
        ("scheme://user:password@host/x", f"scheme://user:{REDACTED}@host/x"),
        ("https://h/p?a=1&token=abc&b=2", f"https://h/p?a=1&token={REDACTED}&b=2"),
        ("Authorization: Bearer abc123", f"Authorization: Bearer {REDACTED}"),
    ],
)
def test_keeps_the_name_and_replaces_the_value(text, expected):
    assert redact_text(text) == expected


@pytest.mark.parametrize(("text", "secret"), SECRET_CASES)
def test_redaction_is_idempotent(text, secret):
    once = redact_text(text)
    assert redact_text(once) == once


def test_pem_private_key_block_multiline():
    text = (
        "key = '''\n-----BEGIN RSA PRIVATE KEY-----\n"
        + PEM_BODY
        + "\n"
        + PEM_BODY[::-1]
        + "\n-----END RSA PRIVATE KEY-----\n'''\nprint('after')\n"
    )
    out = redact_text(text)
    assert PEM_BODY not in out and PEM_BODY[::-1] not in out
    assert "BEGIN RSA PRIVATE KEY" not in out
    assert out.endswith("print('after')\n")


def test_pem_private_key_inside_a_service_account_json():
    account = {
        "type": "service_account",
        "private_key_id": "0123456789abcdef0123456789abcdef01234567",
        "private_key": f"-----BEGIN PRIVATE KEY-----\n{PEM_BODY}\n-----END PRIVATE KEY-----\n",
        "client_email": "sa@proj.iam.gserviceaccount.com",
    }
    out = redact_text(json.dumps(account, indent=1))
    assert PEM_BODY not in out
    assert "0123456789abcdef0123456789abcdef01234567" not in out  # private_key_id is secret-named
    assert json.loads(out)["client_email"] == "sa@proj.iam.gserviceaccount.com"


def test_pem_block_cut_short_is_still_redacted():
    out = redact_text("-----BEGIN OPENSSH PRIVATE KEY-----\n" + PEM_BODY + "\n" + PEM_BODY)
    assert PEM_BODY not in out


def test_public_pem_material_is_kept():
    body = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE"
    text = f"-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----\n"
    assert redact_text(text) == text


def test_notebook_json_source_stays_valid_json():
    # A notebook snapshot is JSON: cell source lines are JSON strings with escaped quotes.
    cell = 'password = "hunter2"\nconfig = {"api_key": "abc-123"}\nDB_PASSWORD=xyz\n'
    nb = {"cells": [{"cell_type": "code", "source": cell.splitlines(keepends=True)}]}
    out = redact_text(json.dumps(nb, indent=1))
    source = "".join(json.loads(out)["cells"][0]["source"])
    assert source == (
        f'password = "{REDACTED}"\nconfig = {{"api_key": "{REDACTED}"}}\nDB_PASSWORD={REDACTED}\n'
    )


@pytest.mark.parametrize(
    "text",
    [
        "tokens = tokenizer(text)",
        "tokenizer = AutoTokenizer.from_pretrained('bert-base-uncased')",
        "os.environ['TOKENIZERS_PARALLELISM'] = 'false'",
        'key = "lr"',
        "for key, value in params.items():",
        "key = jax.random.PRNGKey(0)",
        'KEY_COLUMN = "customer_id"',
        "max_tokens = 512\npad_token_id = 0\neos_token = '</s>'",
        "from sklearn.linear_model import LogisticRegression  # sk-learn",
        "pip install sk-learn-tutorial-for-beginners-2024",
        f'sha256 = "{SHA256}"',
        f"nbtrack.notebook.sha256={SHA256}",
        f"run_id = '{RUN_ID}'",
        f"https://mlflow.example.com/#/experiments/1/runs/{RUN_ID}",
        "password = getpass.getpass()",
        'api_key = os.environ["OPENAI_API_KEY"]',
        "token = os.getenv('HF_TOKEN')",
        "conn = connect(host=h, password=pw)",
        "def login(token: str, password: Optional[str] = None):",
        "password: ${DB_PASSWORD}",
        "api_key = f'{prefix}'",
        'headers = {"Authorization": f"Bearer {token}"}',
        "if password == expected:",
        "Tokens are the atoms of language models; bearer tokens are different.",
        "The author wrote the keyboard shortcut for the monkey patch.",
        "git@github.com:owner/repo.git",
        "https://github.com/owner/repo.git",
        "http://localhost:5000/#/experiments/0",
        "PWD=/work/main\nOLDPWD=/work\nPATH=/usr/bin:/bin",
        "lr = 0.01\nbatch_size = 64\noptimizer = 'sgd'",
        "pip install --upgrade --no-cache-dir torch --index-url https://download.pytorch.org/whl",
        '!python train.py --auth-type basic --password "$DB_PASSWORD"',
        "compass = 'N'\npasses = 3\nbypass_cache = True",
        "secret = ''",
        # code and constants that name secrets without holding them
        'LABEL_KEY = "label"\nCACHE_READ_KEY = "cachedContentTokenCount"\napi_key = "unused"',
        'API_KEY = "api_key"\nCREDENTIALS = "GOOGLE_APPLICATION_CREDENTIALS"',
        '"refresh_token": "refreshToken", "client_secret": "clientSecret"',
        'new_key = f"{parent_key}{sep}{k}"\nrun_token = f"run-{run_id}"',
        "conn = connect(\n    password=password,\n    secret_id=secret.secret_id,\n)",
        "if token := self.token:\n    pass",
        'print(f"{password_strength:.2f}")',
        'cookies = "; ".join(parts)',
        'headers = {"Authorization": "token " + server_token}',
        'url = base + "?token=%s" % token',
        'GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"',
        'MARKERS = ("-----BEGIN RSA PRIVATE KEY-----", "-----END RSA PRIVATE KEY-----")',
        'AUTH_URL = "https://accounts.example.com/o/oauth2/auth"',
        'token_help = "Paste the token you were given by the admin team here, then press enter"',
        'raise ValueError("Invalid Signature: %r" % signature)',
    ],
)
def test_false_positives_survive(text):
    assert redact_text(text) == text


def test_non_ascii_text_keeps_positions():
    # "İ".lower() is two characters: the fast lowercase search must not shift the redaction.
    text = "# İstanbul ünïcode\npassword = 'hunter2'\nİ = 1\n"
    assert redact_text(text) == f"# İstanbul ünïcode\npassword = '{REDACTED}'\nİ = 1\n"


def test_extra_literals_are_redacted_wherever_they_occur():
    out = redact_text("print('connecting with opensesame42 now')", extra=["opensesame42", ""])
    assert out == f"print('connecting with {REDACTED} now')"


def test_extra_literals_prefer_the_longest():
    out = redact_text("abcdefgh-ijkl", extra=["abcdefgh", "abcdefgh-ijkl"])
    assert out == REDACTED


def test_extra_literals_are_matched_literally():
    assert redact_text("a.b*c and axbbc", extra=["a.b*c"]) == f"{REDACTED} and axbbc"


# --- urls ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"https://user:{GITHUB}@github.com/o/r.git", "https://github.com/o/r.git"),
        (f"https://{GITHUB}@github.com/o/r.git", "https://github.com/o/r.git"),
        ("https://oauth2:p@ss@gitlab.com/o/r.git", "https://gitlab.com/o/r.git"),
        ("postgres://u:p@h/db", f"postgres://u:{REDACTED}@h/db"),
        ("https://h/x?a=1&api_key=zzz", f"https://h/x?a=1&api_key={REDACTED}"),
        ("https://github.com/o/r.git", "https://github.com/o/r.git"),
        ("ssh://git@github.com/o/r.git", "ssh://git@github.com/o/r.git"),
        ("git@github.com:o/r.git", "git@github.com:o/r.git"),
        ("not a url: user:pass@host", "not a url: user:pass@host"),
        ("/local/path/repo", "/local/path/repo"),
    ],
)
def test_redact_url(url, expected):
    assert redact_url(url) == expected


# --- env and params -----------------------------------------------------------------------------


def test_redact_env():
    env = {
        "HOME": "/home/u",
        "PWD": "/work/main",
        "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
        "DATABASE_URL": "postgres://u:p4ssw0rd@h/db",
        "BACKUP": "copy of p4ss: hunter2hunter2",
        "DB_PASSWORD": "hunter2hunter2",
        "TOKENIZERS_PARALLELISM": "false",
    }
    out = redact_env(env)
    assert out == {
        "HOME": "/home/u",
        "PWD": "/work/main",
        "AWS_SECRET_ACCESS_KEY": REDACTED,
        "DATABASE_URL": f"postgres://u:{REDACTED}@h/db",
        "BACKUP": f"copy of p4ss: {REDACTED}",  # the value of DB_PASSWORD, seen elsewhere
        "DB_PASSWORD": REDACTED,
        "TOKENIZERS_PARALLELISM": "false",
    }
    assert env["DB_PASSWORD"] == "hunter2hunter2"  # the input is not modified


def test_params_through_the_run_pass():
    from nbtrack.capture.redaction import Redactor

    params = {
        "lr": "0.01",
        "api_key": "abc",
        "data_url": "s3://k:s3cr3t@bucket/x",
        "note": f"uses {HUGGINGFACE}",
        "pad_token_id": "0",
        "misc": "opensesame42",
    }
    assert Redactor(known=["opensesame42"]).mapping(params) == {
        "lr": "0.01",
        "api_key": REDACTED,
        "data_url": f"s3://k:{REDACTED}@bucket/x",
        "note": f"uses {REDACTED}",
        "pad_token_id": "0",
        "misc": REDACTED,
    }


# --- issue 14: rules for the leaks the adversarial test found, and the run's known values ---


@pytest.mark.parametrize(
    ("code", "kept"),
    [
        ('df = pd.DataFrame({"user": ["alice"], "password": ["Pw-' + ALNUM[:12] + '"]})', "alice"),
        ('df["api_key"] = ["k1-' + ALNUM[:10] + '", "k2-' + ALNUM[:10] + '"]', 'df["api_key"]'),
        (
            'passwords = (\n    "one-' + ALNUM[:9] + '",\n    "two-' + ALNUM[:9] + '",\n)',
            "passwords",
        ),
        ('r = requests.get(url, auth=("admin", "Pw-' + ALNUM[:12] + '"))', '"admin"'),
        ('conn = "Driver={ODBC};Server=s;Uid=svc;Pwd=Pw-' + ALNUM[:12] + ';"', "Uid=svc"),
        ('jdbc = "jdbc:sqlserver://h;user=svc;password=Pw-' + ALNUM[:12] + '"', "user=svc"),
        ('mlflow.log_param("smtp_password", "Pw-' + ALNUM[:12] + '")', '"smtp_password"'),
        ("mlflow.set_tag('deploy_token', 'Tk-" + ALNUM[:12] + "')", "'deploy_token'"),
        ('client(password="Pw-' + ALNUM[:12] + '", token=tok)', "token=tok"),
    ],
)
def test_values_under_secret_names_in_new_places_are_redacted_and_learned(code, kept):
    found: set[str] = set()
    clean = redact_text(code, found=found)
    assert ALNUM[:9] not in clean and REDACTED in clean and kept in clean
    assert found and all(ALNUM[:9] in v for v in found)


@pytest.mark.parametrize(
    "code",
    [
        'tokens = ["hello", "world"]',  # a tokenizer's tokens are not secrets
        'cols = {"user": ["alice"], "score": ["0.91"]}',
        'mlflow.log_param("alpha", "0.5")',
        'auth = ("admin", "${ADMIN_PASSWORD}")',  # a reference
        'conn = "Server=s;Uid=svc;Pwd={pwd};"',  # a template
        "PWD=/home/me",  # the working directory
    ],
)
def test_look_alikes_of_the_new_rules_survive(code):
    assert redact_text(code) == code


def test_a_value_known_once_is_redacted_wherever_it_appears():
    from nbtrack.capture.redaction import Redactor

    secret = "Sv-" + ALNUM[:14]
    r = Redactor()
    r.learn(f'secret_val = "{secret}"')  # the cell's source, learned before its outputs
    error = f"ValueError: could not connect with {secret}"
    assert r.text(error) == f"ValueError: could not connect with {REDACTED}"
    coloured = f'\x1b[0;32msecret_val\x1b[39m = \x1b[33m"{ALNUM[:4]}-{ALNUM[5:17]}"\x1b[39m'
    assert ALNUM[5:17] not in r.text(coloured)  # colour codes do not hide an assignment
    assert json.dumps(secret)[1:-1] not in r.literal(json.dumps({"out": f"{secret}\n"}))
    assert Redactor().text(f"echo {secret}") == f"echo {REDACTED}"  # later runs know it too


def test_a_secret_named_param_or_tag_makes_its_value_known():
    from nbtrack.capture.redaction import Redactor

    secret = "Tg-" + ALNUM[:14]
    r = Redactor()
    out = r.mapping({"api_token": secret, "note": f"uses {secret}"})
    assert out == {"api_token": REDACTED, "note": f"uses {REDACTED}"}
    assert r.text(f"run-{secret}") == f"run-{REDACTED}"
