"""The binary package (`make package`, tools/package.sh) and the PGXN META.json: the tarball holds
the library, the control file, the install script of the current version, every upgrade step and an
install note, and every version number agrees with Cargo.toml."""

import json
import os
import subprocess
import tarfile
import tomllib

import pytest

import harness


def cargo_version():
    return tomllib.loads((harness.REPO / "Cargo.toml").read_text())["package"]["version"]


def test_meta_json_is_a_pgxn_distribution_of_this_version():
    meta = json.loads((harness.REPO / "META.json").read_text())
    for key in ("name", "abstract", "version", "maintainer", "license", "provides", "meta-spec"):
        assert meta.get(key), f"META.json lacks {key} (PGXN meta spec 1.0.0)"
    assert meta["meta-spec"]["version"] == "1.0.0"
    assert meta["version"] == cargo_version()
    assert meta["provides"]["sqlchat"]["version"] == cargo_version()
    assert (harness.REPO / meta["provides"]["sqlchat"]["file"]).exists()


def test_the_package_holds_everything_an_install_or_upgrade_needs(tmp_path):
    pg_config = harness.PGBIN / "pg_config"
    if not pg_config.exists():
        pytest.skip(f"no pg_config in {harness.PGBIN} (set PGBIN)")
    env = dict(os.environ, PG_CONFIG=str(pg_config), OUT=str(tmp_path))
    run = subprocess.run(
        ["bash", str(harness.REPO / "tools" / "package.sh"), "--debug"],
        capture_output=True, text=True, timeout=1800, env=env,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    tarball = run.stdout.strip().splitlines()[-1]
    version = cargo_version()
    major = subprocess.run([str(pg_config), "--version"], capture_output=True, text=True).stdout.split()[1].split(".")[0]
    with tarfile.open(tarball) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
        top = {n.split("/", 1)[0] for n in tar.getnames()}
        assert top == {f"sqlchat-{version}-pg{major}-{os.uname().machine}-linux"}
        steps = {f"extension/{p.name}" for p in (harness.REPO / "sql").glob("sqlchat--*--*.sql")}
        wanted = {"lib/sqlchat.so", "extension/sqlchat.control", f"extension/sqlchat--{version}.sql", "META.json",
                  "INSTALL.md"} | steps
        assert steps, "the upgrade steps in sql/"
        assert wanted <= names, f"missing from the package: {sorted(wanted - names)}"
        control = tar.extractfile(f"{top.pop()}/extension/sqlchat.control").read().decode()
        assert f"default_version = '{version}'" in control
        note = tar.extractfile(f"sqlchat-{version}-pg{major}-{os.uname().machine}-linux/INSTALL.md").read().decode()
        assert f"PostgreSQL {major}" in note and "ALTER EXTENSION sqlchat UPDATE" in note
