"""The credential detector (issue 19): what is a credential, what is not, and nothing echoed.

Every fake secret is built at run time ("AKIA" + "X" * 16...) so that no secret scanner flags
this repository.
"""

from __future__ import annotations

import hashlib

import pytest

from modelreg.credentials import (
    find_in_data,
    find_in_text,
    find_in_url,
    is_secret_name,
    refusal,
)
from modelreg.errors import InvalidInput
from modelreg.manifest import CodeRef, DataRef
from modelreg.manifest_credentials import refuse_credentials

AWS_ID = "AKIA" + "Q7" * 8
AWS_SECRET = "wJalr" + "XUtnF" * 5 + "EMI/K7MDE" + "x"  # 40 base64 characters
GITHUB = "ghp_" + "aB3" * 12
GITHUB_PAT = "github_pat_" + "11AB" * 6 + "_" + "x9" * 20
GITLAB = "glpat-" + "Zx8-" * 5
SLACK = "xoxb-" + "1234567890-" * 2 + "AbCdEf"
GOOGLE = "AIza" + "Sy" * 17 + "Q"
HF = "hf_" + "AbCdEfGh" * 4 + "Xy"
OPENAI = "sk-proj-" + "Ab3_" * 12
OPENAI_LEGACY = "sk-" + "a1B2" * 12
STRIPE = "sk_" + "live_" + "4eC39Hq" * 3
PYPI = "pypi-" + "AgEIcHlwaS5vcmc" + "CJ" * 20
NPM = "npm_" + "a1" * 18
PEM = "-----BEGIN " + "RSA PRIVATE KEY-----"
AZURE = "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=" + "Ab+/" * 16 + "=="
JWT = "eyJ" + "hbGciOiJIUzI1NiJ9" + ".eyJ" + "zdWIiOiIxMjM0In0" + "." + "SflKxwRJ" * 4
SHA256 = hashlib.sha256(b"weights").hexdigest()
COMMIT = hashlib.sha1(b"commit").hexdigest()

# (text, the kind found first, the part that must never be echoed)
POSITIVES = [
    ("https://user:" + "hunter2pw@files.corp.example/x", "url-password", "hunter2pw"),
    ("git+https://oauth2:" + GITLAB + "@gitlab.example.com/o/r.git", "url-password", GITLAB),
    ("ssh://git:" + "sshpass55@github.com/o/r.git", "url-password", "sshpass55"),
    ("s3://AKID:" + "s3cr3tval@bucket/data", "url-password", "s3cr3tval"),
    ("https://" + GITHUB + "@github.com/o/r.git", "url-token-user", GITHUB[4:]),
    ("https://" + "A1b2C3d4" * 4 + "@git.corp.example/r.git", "url-token-user", "A1b2C3d4" * 4),
    ("https://bucket.s3.amazonaws.com/k?X-Amz-Signature=" + "ab12" * 16, "url-query", "ab12" * 16),
    ("https://acct.blob.core.windows.net/c/b?sv=2024&sig=" + "Zm9v%2B" * 4, "url-query", "Zm9v"),
    ("https://api.example.com/data?access_token=" + "tok9876x", "url-query", "tok9876x"),
    ("--index-url https://__token__:" + PYPI + "@pypi.corp/simple", "url-password", PYPI[5:]),
    ("PIP_INDEX_URL=https://u:" + "p4ss-w0rd@pypi.corp/simple", "url-password", "p4ss-w0rd"),
    ("key id " + AWS_ID, "aws-access-key-id", AWS_ID[4:]),
    ("ASIA" + "Z" * 16, "aws-access-key-id", "Z" * 16),
    (AWS_ID + " " + AWS_SECRET, "aws-access-key", AWS_SECRET),
    ("aws_secret_access_key = " + AWS_SECRET, "secret-assignment", AWS_SECRET),
    (GITHUB, "github-token", GITHUB[4:]),
    ("gho_" + "x1" * 18, "github-token", "x1" * 18),
    ("ghs_" + "Q2" * 18, "github-token", "Q2" * 18),
    (GITHUB_PAT, "github-token", GITHUB_PAT[11:]),
    (GITLAB, "gitlab-token", GITLAB[6:]),
    (SLACK, "slack-token", SLACK[5:]),
    (GOOGLE, "google-api-key", GOOGLE[4:]),
    (HF, "huggingface-token", HF[3:]),
    (OPENAI, "openai-key", OPENAI[8:]),
    (OPENAI_LEGACY, "openai-key", OPENAI_LEGACY[3:]),
    (STRIPE, "stripe-key", STRIPE[8:]),
    (PYPI, "pypi-token", PYPI[20:]),
    (NPM, "npm-token", NPM[4:]),
    (PEM + "\nMIIEow" + "AbCd" * 10 + "\n", "private-key", "MIIEow"),
    (AZURE, "azure-account-key", "Ab+/" * 16),
    (JWT, "jwt", JWT[3:]),
    ("db password=" + "hunter2", "secret-assignment", "hunter2"),
    ('{"client_secret": "' + "c1i3nt-s3cr3t" + '"}', "secret-assignment", "c1i3nt-s3cr3t"),
]

NEGATIVES = [
    "https://user@files.corp.example/x",  # a user name alone, no password
    "https://bitbucket-user@bitbucket.org/org/repo.git",
    "https://x-access-token@github.com/org/repo.git",
    "git@github.com:org/repo.git",
    "ssh://git@github.com/org/repo.git",
    "https://${PIP_USER}:${PIP_TOKEN}@pypi.corp.example/simple",
    "https://user:$PASSWORD@host/x",
    "https://files.example.com/pkg.whl?token=${DL_TOKEN}",
    "https://api.example.com/items?max_tokens=512&page=2",
    "s3://bucket/datasets/train.parquet",
    "https://conda.anaconda.org/t/something/private",  # only in a package index context
    SHA256,
    "sha256:" + SHA256,
    COMMIT,
    "tokenizer: bpe",
    "max_tokens=512",
    "token_budget: 10",
    "the token: see docs",
    "password: ${DB_PASSWORD}",
    "pad_token=<pad>",
    "sk-learn-random-forest-classifier-v2",
    "hf_bert-base-uncased",
    "AKIA is the prefix of an AWS access key id",
    "fixed the tokenizer for long inputs; f1 up 2 points",
    "",
]


@pytest.mark.parametrize(("text", "kind", "secret"), POSITIVES)
def test_each_credential_shape_is_found_and_never_echoed(text, kind, secret):
    hits = find_in_text(text)
    assert hits, text
    assert hits[0].kind == kind
    assert hits[0].line == 1
    message = refusal("where", hits[0], "fix it")
    assert message.startswith("where: holds a credential ")
    assert secret not in message
    for hit in hits:
        assert secret not in hit.describe()


@pytest.mark.parametrize("text", NEGATIVES)
def test_ordinary_metadata_is_not_a_credential(text):
    assert find_in_text(text) == []


def test_the_line_of_each_credential_is_given():
    text = "numpy\n\n# --index-url https://me:" + "oldpass77@pypi.corp/simple\n" + GITHUB + "\n"
    assert [(c.line, c.kind) for c in find_in_text(text)] == [
        (3, "url-password"),
        (4, "github-token"),
    ]


def test_a_url_credential_names_its_host_and_the_index_context_is_stricter():
    found = find_in_url("https://u:" + "pw-123456@pypi.corp.example:8443/simple")
    assert found is not None
    assert found.hint == "pypi.corp.example:8443"
    assert found.describe() == "in a URL (a password in the user info, for pypi.corp.example:8443)"
    # pip and git send a lone user name as the secret: refused in requirements files only
    assert find_in_url("https://deploytoken@pypi.corp.example/simple") is None
    assert find_in_url("https://deploytoken@pypi.corp.example/simple", index=True) is not None
    assert find_in_url("git+ssh://git@github.com/o/r.git", index=True) is None
    conda = "https://conda.anaconda.org/t/" + "an-0123-tok" + "/private"
    assert find_in_url(conda) is None
    assert find_in_url(conda, index=True) is not None


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("password", True), ("db_password", True), ("passwd", True), ("DB_PASSWORD", True),
        ("secret", True), ("client_secret", True), ("token", True), ("hf_token", True),
        ("hfToken", True), ("api_key", True), ("apiKey", True), ("apikey", True),
        ("access_key", True), ("AWS_SECRET_ACCESS_KEY", True), ("private_key", True),
        ("credentials", True), ("connection_string", True), ("passphrase", True),
        ("tokenizer", False), ("max_tokens", False), ("token_budget", False),
        ("token_type", False), ("pad_token", False), ("eos_token", False),
        ("sort_key", False), ("key", False), ("secret_santa_size", False),
        ("password_min_length", False), ("learning_rate", False), ("", False),
    ],
)  # fmt: skip
def test_secret_names(name, secret):
    assert is_secret_name(name) is secret


def test_params_name_the_key_path_and_let_numbers_booleans_and_placeholders_pass():
    params = {
        "tokenizer": "bpe",
        "max_tokens": 512,
        "token_budget": 10,
        "pad_token": "<pad>",
        "mask_token": "[MASK]",
        "use_auth_token": True,
        "api_key": 123,
        "token": "",
        "password": "${DB_PASSWORD}",
        "weights_sha256": SHA256,
        "db": {"host": "db.internal", "user": "ml", "password": "hunter2"},
    }
    hits = find_in_data(params, "params")
    assert [(c.path, c.kind) for c in hits] == [("params.db.password", "secret-param")]
    assert "hunter2" not in refusal(hits[0].path, hits[0], "fix")


def test_params_are_scanned_in_values_keys_and_lists():
    params = {
        "cloud": {"creds": AWS_ID},
        "mirrors": ["https://pypi.org/simple", "https://u:" + "pw-9876@pypi.corp/simple"],
        GITHUB: 1,
    }
    paths = [(c.path, c.kind) for c in find_in_data(params, "params")]
    assert paths == [
        ("params.cloud.creds", "aws-access-key-id"),
        ("params.mirrors[1]", "url-password"),
        ("params.…", "github-token"),
    ]


def clean_inputs(**changes):
    inputs = {
        "params": {"lr": 0.01, "tokenizer": "bpe"},
        "metrics": {"test": {"f1": 0.9}},
        "message": "first version",
        "tags": ("team:fraud",),
        "author": "Ann <ann@example.com>",
        "data": (DataRef(uri="s3://bucket/train.parquet", kind="uri"),),
        "code": CodeRef("git@github.com:org/repo.git", COMMIT, "main", False),
        "paths": ("model.onnx", "sub/weights.bin"),
    }
    return {**inputs, **changes}


@pytest.mark.parametrize(
    ("changes", "where"),
    [
        ({"params": {"db": {"password": "hunter2"}}}, "params.db.password: "),
        ({"metrics": {"test": {AWS_ID: 1.0}}}, "metrics.test.…: "),
        ({"message": "trained with\n" + GITHUB}, "--message (line 2): "),
        ({"tags": ("ok", "key=" + AWS_ID)}, "--tag: "),
        ({"author": "ci " + GITLAB}, "the author "),
        ({"data": (DataRef(uri="https://u:" + "pw-42abc@data.corp/x.csv", kind="uri"),)},
         "--data: holds a credential in a URL"),
        ({"code": CodeRef("https://u:" + "pw-42abc@github.com/o/r.git", COMMIT, None, False)},
         "the code's git remote 'origin': holds a credential in a URL"),
        ({"paths": ("model.onnx", "keys/" + GITHUB + ".txt")}, "the file 'keys/…': "),
    ],
)  # fmt: skip
def test_refuse_credentials_names_the_field(changes, where):
    with pytest.raises(InvalidInput) as info:
        refuse_credentials(**clean_inputs(**changes))
    message = str(info.value)
    assert where in message
    assert message.endswith("nothing was stored")
    for secret in ("hunter2", AWS_ID[4:], GITHUB[4:], GITLAB[6:], "pw-42abc"):
        assert secret not in message


def test_refuse_credentials_lets_clean_inputs_pass():
    refuse_credentials(**clean_inputs())
