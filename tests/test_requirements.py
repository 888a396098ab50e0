"""Reading requirements files (issue 13): formats, package lists, credentials refused."""

from __future__ import annotations

import json

import pytest

from modelreg.errors import InvalidInput, NotFound
from modelreg.requirements import (
    FORMATS,
    detect_format,
    find_credential,
    parse_requirements,
    read_requirements,
)


def parse(name: str, text: str) -> tuple[str, tuple[str, ...]]:
    req = parse_requirements(text.encode(), name)
    assert req.data == text.encode()  # what is stored is exactly what was read
    assert req.name == name
    assert req.format in FORMATS
    return req.format, req.packages


def refused(name: str, text: str) -> str:
    with pytest.raises(InvalidInput) as info:
        parse_requirements(text.encode(), name)
    message = str(info.value)
    assert "\n" not in message
    return message


# -- requirements.txt -------------------------------------------------------------------------

REQUIREMENTS_TXT = """\
# pinned for the model
--index-url https://pypi.org/simple
--extra-index-url=https://${PIP_USER}:${PIP_TOKEN}@pypi.corp.example/simple
--find-links ./wheels
--trusted-host pypi.corp.example
--prefer-binary
-r base.txt
--constraint constraints.txt
-cmore-constraints.txt

numpy==1.26.4 \\
    --hash=sha256:aaaa \\
    --hash=sha256:bbbb
scikit-learn>=1.4  # the model
Foo_Bar[x] >= 1.0 ; python_version < "3.12"
requests==2.31.0 --hash sha256:cccc
-e git+https://github.com/org/y.git@v1.2#egg=y
git+https://github.com/org/z.git@main#egg=z&subdirectory=pkg
pkg @ https://files.example.com/pkg-1.0-py3-none-any.whl#sha256=dddd
./vendor/local-pkg
wheels/other-2.0-py3-none-any.whl
torch==2.3.0 ; sys_platform == "linux"   # GPU build on linux
#commented-out==1.0
    # indented comment
"""


def test_requirements_txt_with_options_continuations_markers_and_urls():
    fmt, packages = parse("requirements.txt", REQUIREMENTS_TXT)
    assert fmt == "requirements"
    assert packages == (
        "-r base.txt",
        "-c constraints.txt",
        "-c more-constraints.txt",
        "numpy==1.26.4",
        "scikit-learn>=1.4",
        'Foo_Bar[x]>=1.0; python_version < "3.12"',
        "requests==2.31.0",
        "-e git+https://github.com/org/y.git@v1.2#egg=y",
        "git+https://github.com/org/z.git@main#egg=z&subdirectory=pkg",
        "pkg @ https://files.example.com/pkg-1.0-py3-none-any.whl#sha256=dddd",
        "./vendor/local-pkg",
        "wheels/other-2.0-py3-none-any.whl",
        'torch==2.3.0; sys_platform == "linux"',
    )


def test_egg_fragment_and_hash_without_whitespace_are_not_comments():
    _, packages = parse(
        "requirements.txt",
        "-e git+https://github.com/org/y.git#egg=y\n"
        "--editable=git+https://github.com/org/w.git#egg=w # a comment\n"
        "hg+https://hg.example.com/repo#egg=h\n",
    )
    assert packages == (
        "-e git+https://github.com/org/y.git#egg=y",
        "-e git+https://github.com/org/w.git#egg=w",
        "hg+https://hg.example.com/repo#egg=h",
    )


def test_continuation_ends_at_a_comment_line_and_at_end_of_file():
    _, packages = parse("requirements.txt", "numpy==1.26.4 \\\n# note \\\nscipy \\")
    assert packages == ("numpy==1.26.4", "scipy")


def test_crlf_bom_and_other_names_read_as_requirements():
    _, packages = parse("requirements-dev.in", "\ufeffnumpy\r\npandas>=2 \r\n")
    assert packages == ("numpy", "pandas>=2")
    assert parse("requirements.lock", "six==1.16.0\n")[1] == ("six==1.16.0",)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("name: fraud\ndependencies:\n  - numpy\n", "requirements.txt:1: not a requirement"),
        ("numpy\n--frobnicate\n", "requirements.txt:2: unknown pip option '--frobnicate'"),
        ("numpy==1 --index-url https://x.example/simple\n", "requirements.txt:1: pip option"),
        ("numpy\n-r\n", "requirements.txt:2: pip option -r needs a value"),
        ("pkg @ https://h.example/p.whl ; python_version <<< 3\n", "requirements.txt:1: invalid"),
        ("numpy\nscipy \\\n  >= = 1\n", "requirements.txt:2: not a requirement"),
    ],
)
def test_malformed_requirements_txt_is_refused_with_file_and_line(text, where):
    assert refused("requirements.txt", text).startswith(where)


# -- conda ------------------------------------------------------------------------------------

ENVIRONMENT_YML = """\
name: fraud
channels:
  - conda-forge
  - defaults
  - https://${CONDA_USER}:${CONDA_TOKEN}@conda.corp.example/private
dependencies:
  - python=3.11
  - numpy>=1.26,<2
  - conda-forge::pytorch 2.3.* cuda*
  - pip
  - pip:
      - requests==2.31.0
      - --extra-index-url https://pypi.corp.example/simple
      - -r requirements-extra.txt
      - -e git+https://github.com/org/y.git#egg=y
      - Foo_Bar[x] >= 1.0 ; python_version < "3.12"
"""


def test_conda_environment_with_nested_pip_list():
    fmt, packages = parse("environment.yml", ENVIRONMENT_YML)
    assert fmt == "conda-environment"
    assert packages == (
        "python=3.11",
        "numpy>=1.26,<2",
        "conda-forge::pytorch 2.3.* cuda*",
        "pip",
        "requests==2.31.0",
        "-r requirements-extra.txt",
        "-e git+https://github.com/org/y.git#egg=y",
        'Foo_Bar[x]>=1.0; python_version < "3.12"',
    )
    assert parse("env.yaml", ENVIRONMENT_YML)[1] == packages


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: x\n", "environment.yml: not a conda environment file"),
        ("- numpy\n", "environment.yml: not a conda environment file"),
        ("dependencies:\n  - numpy\n  - {conda: [x]}\n", "environment.yml:3: a dependency"),
        ("dependencies:\n  - pip:\n    - 42\n", "environment.yml:3: a pip: entry"),
        ("dependencies:\n  - pip:\n    - name: x\n", "environment.yml:3: a pip: entry"),
        ("dependencies:\n  - pip:\n    - 'name: x'\n", "environment.yml:3: not a requirement"),
        ("channels: conda-forge\ndependencies: []\n", "environment.yml:1: channels"),
        ("dependencies: [numpy\n", "environment.yml:"),
    ],
)
def test_malformed_conda_environment_is_refused(text, expected):
    assert refused("environment.yml", text).startswith(expected)


def test_conda_explicit_spec():
    text = (
        "# This file may be used to create an environment using:\n"
        "# $ conda create --name <env> --file <this file>\n"
        "# platform: linux-64\n"
        "@EXPLICIT\n"
        "https://conda.anaconda.org/conda-forge/linux-64/numpy-1.26.4-py311h64a7726_0.conda\n"
        "https://repo.anaconda.com/pkgs/main/noarch/six-1.16.0-pyhd3eb1b0_1.tar.bz2#34586824d411\n"
    )
    fmt, packages = parse("spec-file.txt", text)
    assert fmt == "conda-explicit"
    assert packages == ("numpy-1.26.4-py311h64a7726_0", "six-1.16.0-pyhd3eb1b0_1")
    assert refused("spec-file.txt", "@EXPLICIT\nnumpy\n").startswith("spec-file.txt:2: expected")


# -- lock files (made by uv 0.13, poetry 2.5 and pipenv, trimmed; git sources added) -----------

UV_LOCK = """\
version = 1
revision = 3
requires-python = ">=3.11"

[[package]]
name = "demo"
version = "0.1.0"
source = { virtual = "." }
dependencies = [
    { name = "idna" },
    { name = "six" },
]

[[package]]
name = "idna"
version = "3.20"
source = { registry = "https://pypi.org/simple" }
sdist = { url = "https://files.pythonhosted.org/packages/f5/08/idna-3.20.tar.gz", hash = "sha256:a7db", size = 216463 }
wheels = [
    { url = "https://files.pythonhosted.org/packages/58/a2/idna-3.20-py3-none-any.whl", hash = "sha256:ab7a", size = 69583 },
]

[[package]]
name = "mylib"
version = "0.3.0"
source = { git = "https://github.com/org/mylib?rev=main#0123456789abcdef0123456789abcdef01234567" }

[[package]]
name = "onefile"
version = "1.0"
source = { url = "https://files.example.com/onefile-1.0-py3-none-any.whl" }

[[package]]
name = "sibling"
version = "0.1.0"
source = { editable = "packages/sibling" }

[[package]]
name = "six"
version = "1.16.0"
source = { registry = "https://pypi.org/simple" }
"""

POETRY_LOCK = """\
# This file is automatically @generated by Poetry 2.5.1 and should not be changed by hand.

[[package]]
name = "idna"
version = "3.20"
description = "Internationalized Domain Names in Applications (IDNA)"
optional = false
python-versions = ">=3.9"
groups = ["main"]
files = [
    {file = "idna-3.20-py3-none-any.whl", hash = "sha256:ab7a"},
]

[package.extras]
all = ["coverage (>=7.10.0)"]

[[package]]
name = "mylib"
version = "0.3.0"
description = ""
optional = false
python-versions = "*"
groups = ["main"]
markers = "sys_platform == \\"linux\\""
files = []

[package.source]
type = "git"
url = "https://github.com/org/mylib.git"
reference = "main"
resolved_reference = "0123456789abcdef0123456789abcdef01234567"

[[package]]
name = "six"
version = "1.16.0"
description = "Python 2 and 3 compatibility utilities"
optional = false
python-versions = ">=2.7, !=3.0.*, !=3.1.*, !=3.2.*"
groups = ["main"]
files = []

[package.source]
type = "legacy"
url = "https://pypi.corp.example/simple"
reference = "corp"

[metadata]
lock-version = "2.1"
python-versions = ">=3.11"
content-hash = "0014e010d56aa9dabadecccf1487612538d68c295fd9c19778db7d2a453abaf4"
"""

PIPFILE_LOCK = {
    "_meta": {
        "hash": {"sha256": "b61e0788"},
        "pipfile-spec": 6,
        "requires": {},
        "sources": [{"name": "pypi", "url": "https://pypi.org/simple", "verify_ssl": True}],
    },
    "default": {
        "idna": {
            "hashes": ["sha256:a7db", "sha256:ab7a"],
            "markers": "python_version >= '3.8'",
            "version": "==3.20",
        },
        "mylib": {"editable": True, "git": "https://github.com/org/mylib.git", "ref": "0123abc"},
        "requests": {"extras": ["socks"], "hashes": [], "index": "pypi", "version": "==2.31.0"},
        "six": {"hashes": ["sha256:1e61"], "index": "pypi", "version": "==1.16.0"},
    },
    "develop": {"pytest": {"hashes": [], "version": "==8.3.0"}},
}

PYLOCK_TOML = """\
# This file was autogenerated by uv via the following command:
#    uv export --format pylock.toml
lock-version = "1.0"
created-by = "uv"
requires-python = ">=3.11"

[[packages]]
name = "idna"
version = "3.20"
marker = "python_full_version >= '3.11'"
index = "https://pypi.org/simple"
sdist = { url = "https://files.pythonhosted.org/packages/f5/08/idna-3.20.tar.gz", upload-time = 2026-09-17T14:11:04Z, size = 216463, hashes = { sha256 = "a7db" } }

[[packages]]
name = "mylib"
vcs = { type = "git", url = "https://github.com/org/mylib", commit-id = "0123abc" }

[[packages]]
name = "six"
version = "1.16.0"
index = "https://pypi.org/simple"
"""


def test_uv_lock():
    fmt, packages = parse("uv.lock", UV_LOCK)
    assert fmt == "uv-lock"
    assert packages == (
        "idna==3.20",
        "mylib @ git+https://github.com/org/mylib@0123456789abcdef0123456789abcdef01234567",
        "onefile @ https://files.example.com/onefile-1.0-py3-none-any.whl",
        "sibling @ packages/sibling",
        "six==1.16.0",
    )


def test_poetry_lock():
    fmt, packages = parse("poetry.lock", POETRY_LOCK)
    assert fmt == "poetry-lock"
    assert packages == (
        "idna==3.20",
        'mylib @ git+https://github.com/org/mylib.git@0123456789abcdef0123456789abcdef01234567; sys_platform == "linux"',
        "six==1.16.0",
    )


def test_pipfile_lock_reads_the_default_section():
    fmt, packages = parse("Pipfile.lock", json.dumps(PIPFILE_LOCK, indent=4))
    assert fmt == "pipfile-lock"
    assert packages == (
        "idna==3.20; python_version >= '3.8'",
        "mylib @ git+https://github.com/org/mylib.git@0123abc",
        "requests[socks]==2.31.0",
        "six==1.16.0",
    )


def test_pylock_toml():
    fmt, packages = parse("pylock.toml", PYLOCK_TOML)
    assert fmt == "pylock"
    assert packages == (
        "idna==3.20; python_full_version >= '3.11'",
        "mylib @ git+https://github.com/org/mylib@0123abc",
        "six==1.16.0",
    )
    assert parse("pylock.gpu.toml", PYLOCK_TOML)[1] == packages


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("uv.lock", "version = 1\n[[package]\n", "uv.lock:2: not valid TOML"),
        ("uv.lock", "[[package]]\nname = 'x'\n", "uv.lock: not a uv.lock"),
        ("uv.lock", "version = 1\npackage = 3\n", "uv.lock: not a uv.lock"),
        ("poetry.lock", "[[package]]\nname = 'x'\n", "poetry.lock: not a poetry.lock"),
        ("Pipfile.lock", '{"default": {}', "Pipfile.lock:1: not valid JSON"),
        ("Pipfile.lock", '{"default": {}}', "Pipfile.lock: not a Pipfile.lock"),
        ("Pipfile.lock", '{"_meta": {}, "default": {"x": 1}}', "Pipfile.lock: not a Pipfile"),
        ("pylock.toml", "[[packages]]\nname = 'x'\n", "pylock.toml: not a pylock.toml"),
    ],
)
def test_malformed_lock_files_are_refused(name, text, expected):
    assert refused(name, text).startswith(expected)


# -- formats ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("requirements.txt", "requirements"),
        ("requirements-gpu.txt", "requirements"),
        ("requirements.in", "requirements"),
        ("requirements.lock", "requirements"),
        ("reqs", "requirements"),
        ("environment.yml", "conda-environment"),
        ("conda.yaml", "conda-environment"),
        ("uv.lock", "uv-lock"),
        ("poetry.lock", "poetry-lock"),
        ("Pipfile.lock", "pipfile-lock"),
        ("pylock.toml", "pylock"),
        ("pylock.dev.toml", "pylock"),
        ("pyproject.toml", None),
        ("setup.cfg", None),
        ("deps.json", None),
        ("Cargo.lock", None),
    ],
)
def test_format_is_chosen_by_file_name(name, fmt):
    assert detect_format(name) == fmt


def test_unknown_format_is_refused_with_one_line():
    message = refused("pyproject.toml", "[project]\ndependencies = ['numpy']\n")
    assert message.startswith("--requirements pyproject.toml: unknown format")


def test_read_requirements_reports_missing_unreadable_and_binary_files(tmp_path):
    with pytest.raises(NotFound):
        read_requirements(tmp_path / "requirements.txt")
    with pytest.raises(InvalidInput, match="is a directory"):
        read_requirements(tmp_path)
    bad = tmp_path / "requirements.txt"
    bad.write_bytes(b"numpy\n\xff\xfe\n")
    with pytest.raises(InvalidInput, match=r"requirements.txt: not valid UTF-8"):
        read_requirements(bad)


# -- credentials ------------------------------------------------------------------------------

# (file name, content, line of the credential, the secret that must never be echoed)
CREDENTIALS = [
    (
        "requirements.txt",
        "numpy\n--index-url https://user:s3cr3t@pypi.corp.example/simple\n",
        2,
        "s3cr3t",
    ),
    (
        "requirements.txt",
        "-i https://__token__:pypi-AgEIcHlwaS5vcmc@pypi.corp.example/simple\n",
        1,
        "pypi-AgEIcHlwaS5vcmc",
    ),
    (
        "requirements.txt",
        "\n\n--extra-index-url=https://ghp_0123456789abcdef@pypi.corp.example/simple\n",
        3,
        "ghp_0123456789abcdef",
    ),
    (
        "requirements.txt",
        "-e git+https://oauth2:glpat-ABCDEF123@gitlab.example.com/org/y.git#egg=y\n",
        1,
        "glpat-ABCDEF123",
    ),
    (
        "requirements.txt",
        "git+https://ghp_XYZ987654321@github.com/org/z.git#egg=z\n",
        1,
        "ghp_XYZ987654321",
    ),
    (
        "requirements.txt",
        "pkg @ https://deploy:hunter2pass@files.corp.example/pkg-1.0.whl\n",
        1,
        "hunter2pass",
    ),
    (
        "requirements.txt",
        "pkg @ https://files.corp.example/pkg.whl?X-Amz-Signature=deadbeef42\n",
        1,
        "deadbeef42",
    ),
    (
        "requirements.txt",
        "pkg @ https://files.corp.example/pkg.whl?private_token=tok-9876\n",
        1,
        "tok-9876",
    ),
    (
        "requirements.txt",
        "numpy\n# old: --index-url https://me:oldpass77@pypi.corp.example/simple\n",
        2,
        "oldpass77",
    ),
    ("requirements.txt", "-f https://user:pw-in-links@wheels.corp.example/\n", 1, "pw-in-links"),
    ("requirements.txt", "git+ssh://git:sshpass55@github.com/org/z.git#egg=z\n", 1, "sshpass55"),
    (
        "requirements.txt",
        "--extra-index-url https://user:\\\ncontinued-secret@pypi.corp.example/simple\n",
        1,
        "continued-secret",
    ),
    (
        "environment.yml",
        "channels:\n  - https://me:chanpass@conda.corp.example/main\ndependencies: [numpy]\n",
        2,
        "chanpass",
    ),
    (
        "environment.yml",
        "channels:\n  - https://conda.anaconda.org/t/an-0123-token/private\ndependencies: [numpy]\n",
        2,
        "an-0123-token",
    ),
    (
        "environment.yml",
        "dependencies:\n  - pip:\n    - --index-url https://u:yamlpipsecret@pypi.corp.example/simple\n",
        3,
        "yamlpipsecret",
    ),
    (
        "uv.lock",
        'version = 1\n[[package]]\nname = "x"\nsource = { registry = "https://u:uvsecret@pypi.corp.example/simple" }\n',
        4,
        "uvsecret",
    ),
    (
        "Pipfile.lock",
        '{"_meta": {"sources": [{"url": "https://u:pipfilesecret@pypi.corp.example/simple"}]},\n "default": {}}',
        1,
        "pipfilesecret",
    ),
    (
        "poetry.lock",
        '[[package]]\nname = "x"\nversion = "1"\n[package.source]\ntype = "git"\nurl = "https://tok:poetrysecret@github.com/org/x.git"\n[metadata]\n',
        6,
        "poetrysecret",
    ),
]


@pytest.mark.parametrize(("name", "text", "line", "secret"), CREDENTIALS)
def test_a_credential_in_any_url_is_refused_naming_file_and_line(name, text, line, secret):
    message = refused(name, text)
    assert message.startswith(f"{name}:{line}: holds a credential in a URL")
    assert secret not in message


@pytest.mark.parametrize(
    "url",
    [
        "https://${PIP_USER}:${PIP_TOKEN}@pypi.corp.example/simple",
        "https://${PIP_TOKEN}@pypi.corp.example/simple",
        "https://__token__:${PYPI_TOKEN}@pypi.corp.example/simple",
        "git+ssh://git@github.com/org/z.git@v1#egg=z",
        "ssh://git@github.com/org/z.git",
        "git+https://github.com/org/z.git@v1.0#egg=z",
        "https://conda.anaconda.org/t/${ANACONDA_TOKEN}/private",
        "https://files.example.com/pkg.whl?download=1#sha256=abc",
        "https://files.example.com/pkg.whl?token=${DL_TOKEN}",
        "https://github.com/org/repo/archive/refs/tags/v1.0@2.zip",
    ],
)
def test_environment_variable_references_and_ssh_users_are_not_credentials(url):
    assert find_credential(f"# {url}\n{url}\n") is None


def test_environment_variable_references_are_kept_as_written():
    text = "--index-url https://${PIP_USER}:${PIP_TOKEN}@pypi.corp.example/simple\nnumpy\n"
    req = parse_requirements(text.encode(), "requirements.txt")
    assert req.data == text.encode()
    assert req.packages == ("numpy",)
