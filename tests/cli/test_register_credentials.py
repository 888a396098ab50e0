"""Secrets never enter a manifest (issue 19), end to end: `mreg register`, `tag`, `promote`.

Each refusal is exit 2 with one line naming where the credential is (the param's key path,
the file and line, the argument), the secret is in no output and in no store file, and the
store is unchanged. Fake secrets are built at run time so no secret scanner flags the repo.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.helpers import assert_one_line_error, ok
from tests.conftest import git, snapshot

AWS_ID = "AKIA" + "X" * 16
GITHUB = "ghp_" + "Tk9x" * 9
HF = "hf_" + "TkAbCdEf" * 4 + "Gh"
PASSWORD = "Tk-hunter2-pw"


def store_bytes(store) -> list[tuple[str, bytes]]:
    return [(str(p), p.read_bytes()) for p in sorted(store.root.rglob("*")) if p.is_file()]


def refused(res, secret: str, store, before) -> str:
    line = assert_one_line_error(res, 2)
    assert "holds a credential" in line
    assert secret not in res.stdout + res.stderr
    assert snapshot(store.root) == before
    assert not [p for p, data in store_bytes(store) if secret.encode() in data]
    return line


@pytest.mark.parametrize(
    ("args", "secret", "where"),
    [
        (["--param", f"db.password={PASSWORD}"], PASSWORD, "params.db.password: "),
        (["--param", f"cloud.key_id={AWS_ID}"], AWS_ID, "params.cloud.key_id: "),
        (["--param", f"index=https://u:{PASSWORD}@pypi.corp.example/simple"], PASSWORD,
         "params.index: holds a credential in a URL (a password in the user info, for "
         "pypi.corp.example)"),
        (["--metric", f"test.{AWS_ID}=1"], AWS_ID, "metrics.test.…: "),
        (["--message", f"trained\nwith HF_TOKEN={HF}"], HF, "--message (line 2): "),
        (["--tag", f"key={AWS_ID}"], AWS_ID, "--tag: "),
        (["--author", f"ci {GITHUB}"], GITHUB, "the author "),
        (["--data", f"https://reader:{PASSWORD}@data.corp.example/train.csv"], PASSWORD,
         "--data: holds a credential in a URL"),
        (["--data", f"s3://{AWS_ID}:{PASSWORD}@bucket/train.parquet"], PASSWORD, "--data: "),
        (["--data", "https://b.s3.amazonaws.com/train.csv?X-Amz-Signature=" + "Tk12" * 16],
         "Tk12" * 16, "--data: holds a credential in a URL (a query parameter X-Amz-Signature"),
    ],
)  # fmt: skip
def test_register_refuses_a_credential_naming_where(
    store, run_mreg, model_file, args, secret, where
):
    f = model_file()
    before = snapshot(store.root)
    res = run_mreg("register", "clf", str(f), "-V", "1.0.0", "--no-code", *args)
    line = refused(res, secret, store, before)
    assert where in line
    assert line.endswith("nothing was stored")


def test_a_params_file_credential_is_named_by_its_key_path(tmp_path, store, run_mreg, model_file):
    f = model_file()
    params = tmp_path / "params.json"
    params.write_text(
        json.dumps({"tokenizer": "bpe", "storage": {"azure": {"account_key": "Tk" + "Ab+/" * 8}}})
    )
    before = snapshot(store.root)
    res = run_mreg("register", "clf", str(f), "--params-file", str(params), "--no-code")
    line = refused(res, "Ab+/Ab+/", store, before)
    assert "params.storage.azure.account_key: holds a credential" in line


def test_a_key_shape_in_a_requirements_file_is_refused_with_its_line(
    tmp_path, store, run_mreg, model_file
):
    f = model_file()
    req = tmp_path / "given" / "requirements.txt"
    req.parent.mkdir()
    req.write_text(f"numpy\ntorch\n# export HF_TOKEN={HF}\n")
    before = snapshot(store.root)
    res = run_mreg("register", "clf", str(f), "--requirements", str(req), "--no-code")
    line = refused(res, HF, store, before)
    assert f"{req}:3: holds a credential (a Hugging Face token, hf_…)" in line


def test_a_file_whose_name_is_a_credential_is_refused_masked(store, run_mreg, model_file):
    f = model_file(f"{GITHUB}.txt")
    before = snapshot(store.root)
    line = refused(run_mreg("register", "clf", str(f), "--no-code"), GITHUB, store, before)
    assert "the file '…': holds a credential (a GitHub token, ghp_…)" in line


def test_a_git_remote_with_a_credential_is_refused_unless_no_code(
    git_repo, store, run_mreg, model_file
):
    f = model_file()
    git(git_repo, "remote", "add", "origin", f"https://ci:{PASSWORD}@github.com/org/repo.git")
    before = snapshot(store.root)
    res = run_mreg("register", "clf", str(f), "--store", str(store.root), cwd=git_repo)
    line = refused(res, PASSWORD, store, before)
    assert "the code's git remote 'origin': holds a credential in a URL" in line
    assert "--no-code" in line
    ok(run_mreg("register", "clf", str(f), "--store", str(store.root), "--no-code", cwd=git_repo))

    git(git_repo, "remote", "set-url", "origin", "git@github.com:org/repo.git")
    res = ok(
        run_mreg("register", "clf", str(f), "--store", str(store.root), "--json", cwd=git_repo)
    )
    version = res.json()["version"]
    shown = ok(run_mreg("show", f"clf@{version}", "--store", str(store.root), "--json"))
    assert shown.json()["code"]["repo"] == "git@github.com:org/repo.git"


def test_ordinary_params_data_and_user_names_are_registered(store, run_mreg, model_file):
    f = model_file()
    args = [
        "--param", "tokenizer=bpe", "--param", "max_tokens=512", "--param", "token_budget=10",
        "--param", "pad_token=<pad>", "--param", "use_auth_token=true", "--param", "api_key=7",
        "--param", "weights=" + "ab" * 32, "--param", "db.password=${DB_PASSWORD}",
        "--data", "https://reader@data.corp.example/train.csv", "--data", "s3://bucket/x.parquet",
        "--message", "the token budget: 10k; fixed the tokenizer", "--tag", "team:fraud",
    ]  # fmt: skip
    res = ok(run_mreg("register", "clf", str(f), "-V", "1.0.0", "--no-code", "--json", *args))
    assert res.json()["created"] is True


def test_tag_and_reasons_refuse_a_credential(store, run_mreg, model_file):
    f = model_file()
    ok(run_mreg("register", "clf", str(f), "-V", "1.0.0", "--no-code"))
    before = snapshot(store.root)
    line = refused(run_mreg("tag", "clf@1.0.0", f"key={AWS_ID}"), AWS_ID, store, before)
    assert "the tag: holds a credential (an AWS access key id, AKIA…)" in line
    res = run_mreg("promote", "clf@1.0.0", "--to", "production", "--reason", f"by {GITHUB}")
    assert "--reason: holds a credential" in refused(res, GITHUB, store, before)
    res = run_mreg("deprecate", "clf@1.0.0", "--reason", f"leaked password={PASSWORD}")
    assert "--reason: holds a credential" in refused(res, PASSWORD, store, before)
    ok(run_mreg("tag", "clf@1.0.0", "team:fraud"))


def test_the_store_holds_no_secret_after_a_refused_and_a_fixed_register(
    tmp_path: Path, store, run_mreg, model_file
):
    f = model_file()
    before = snapshot(store.root)
    res = run_mreg("register", "clf", str(f), "--no-code", "--param", f"hf_token={HF}")
    refused(res, HF, store, before)
    ok(run_mreg("register", "clf", str(f), "--no-code", "--param", "hf_token=${HF_TOKEN}"))
    assert not [p for p, data in store_bytes(store) if HF.encode() in data]
