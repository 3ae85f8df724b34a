"""The steward binary as an operator uses it: version, migrate, check-config, bad settings, a refused downgrade."""
import json
import os
import pathlib
import shutil
import sqlite3
import subprocess
import tempfile

from conftest import ROOT, _binary, _free_port


def run(*args, env=None, cwd="/"):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STEWARD_")}
    clean.update(env or {})
    return subprocess.run([str(_binary()), *args], capture_output=True, text=True, env=clean, cwd=cwd, timeout=60)


def test_version():
    result = run("version")
    assert result.returncode == 0
    assert result.stdout.strip().startswith("steward 0.")


def test_migrate_creates_then_is_idempotent(tmp_path):
    data = tmp_path / "data"
    first = run("migrate", "--data", str(data))
    assert first.returncode == 0, first.stderr
    assert "applied 0001_core.sql" in first.stdout
    assert oct(data.stat().st_mode & 0o777) == "0o700"
    second = run("migrate", "--data", str(data))
    assert second.returncode == 0
    assert "is up to date" in second.stdout and "applied 0001" not in second.stdout


def test_check_config_reports_sources_and_precedence(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "steward.json").write_text(json.dumps({"port": 10100, "log_level": "debug"}))
    result = run("check-config", "--data", str(data), "--port", "10300", env={"STEWARD_LOG_LEVEL": "warning"})
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    assert "10300" in lines["port"] and "(--port)" in lines["port"]
    assert "warning" in lines["log_level"] and "(STEWARD_LOG_LEVEL)" in lines["log_level"]
    assert "configuration OK" in result.stdout


def test_misspelled_setting_stops_startup_with_a_useful_message(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "steward.json").write_text(json.dumps({"prot": 10100}))
    for command in ("check-config", "serve"):
        result = run(command, "--data", str(data))
        assert result.returncode == 78
        assert 'unknown setting "prot" (did you mean "port"?)' in result.stderr
        assert "accepted settings: bind, port" in result.stderr
    bad_flag = run("check-config", "--data", str(data.parent / "other"), "--port", "http")
    assert bad_flag.returncode == 78
    assert '--port = "http" is not valid; expected an integer from 1 to 65535' in bad_flag.stderr


def test_binary_runs_from_outside_the_repository_with_installed_resources(tmp_path):
    prefix = tmp_path / "prefix"
    (prefix / "bin").mkdir(parents=True)
    shutil.copy2(_binary(), prefix / "bin" / "steward")
    share = prefix / "share" / "steward"
    for entry in ("Templates", "Public", "migrations"):
        shutil.copytree(ROOT / entry, share / entry)
    result = subprocess.run([str(prefix / "bin" / "steward"), "migrate", "--data", str(tmp_path / "data")],
                            capture_output=True, text=True, cwd=str(tmp_path), timeout=60)
    assert result.returncode == 0, result.stderr
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    shutil.copy2(_binary(), lonely / "steward")
    missing = subprocess.run([str(lonely / "steward"), "migrate", "--data", str(tmp_path / "d2")],
                             capture_output=True, text=True, cwd=str(tmp_path), timeout=60)
    assert missing.returncode != 0
    assert "pass --resources DIR" in missing.stderr
    explicit = subprocess.run([str(lonely / "steward"), "migrate", "--data", str(tmp_path / "d3"), "--resources", str(share)],
                              capture_output=True, text=True, cwd=str(tmp_path), timeout=60)
    assert explicit.returncode == 0, explicit.stderr


def test_serve_refuses_a_database_from_a_newer_steward(tmp_path):
    # Somewhere the steward user can walk to: serve as root hands the data directory to it first.
    reachable = pathlib.Path(tempfile.mkdtemp(prefix="steward-e2e-cli-"))
    os.chmod(reachable, 0o711)
    data = reachable / "data"
    assert run("migrate", "--data", str(data)).returncode == 0
    db = sqlite3.connect(data / "steward.db")
    db.execute("INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (9001, 'future_feature', 'x', 0)")
    db.commit()
    db.close()
    result = run("serve", "--data", str(data), "--no-tls", "--bind", "127.0.0.1", "--port", str(_free_port()))
    shutil.rmtree(reachable)
    assert result.returncode != 0
    assert "9001_future_feature" in result.stderr and "Refusing to start" in result.stderr


def test_role_and_token_commands(tmp_path):
    data = str(tmp_path / "data")
    missing = run("role", "grant", "admin", "--user", "no-such-user-4711", "--data", data)
    assert missing.returncode != 0 and "no Unix user" in missing.stderr
    bad_role = run("role", "grant", "superuser", "--user", "root", "--data", data)
    assert bad_role.returncode != 0 and "admin, operator, approver, viewer, auditor" in bad_role.stderr
    assert run("role", "grant", "operator", "--user", "root", "--data", data).returncode == 0
    listed = run("role", "list", "--data", data)
    assert listed.returncode == 0 and "operator\tuser\troot" in listed.stdout

    too_high = run("token", "create", "--user", "root", "--name", "x", "--role", "admin", "--data", data)
    assert too_high.returncode != 0 and "higher than its owner" in too_high.stderr
    created = run("token", "create", "--user", "root", "--name", "ci", "--role", "operator", "--expires", "7d", "--data", data)
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip().splitlines()[-1]
    assert token.startswith("stw_") and len(token) == 47
    database = sqlite3.connect(pathlib.Path(data) / "steward.db")
    assert token not in str(database.execute("SELECT * FROM api_tokens").fetchall())
    listing = run("token", "list", "--data", data)
    assert "ci" in listing.stdout and token not in listing.stdout
    assert run("token", "revoke", "1", "--data", data).returncode == 0
    assert run("role", "revoke", "operator", "--user", "root", "--data", data).returncode == 0
    actions = [row[0] for row in database.execute("SELECT action FROM audit_events ORDER BY id")]
    assert actions == ["role.grant", "token.create", "token.revoke", "role.revoke"]


def make_dry_run(*targets):
    """What `make TARGET` would run, without running it (-B: as on a fresh checkout, where nothing is built yet)."""
    return subprocess.run(["make", "-n", "-B", *targets], capture_output=True, text=True, cwd=ROOT, timeout=60).stdout


def test_make_run_installs_only_what_running_needs_and_make_test_the_rest():
    run_plan, test_plan = make_dry_run("run"), make_dry_run("test")
    test_only = ["chromium", "debootstrap", "rpm", "createrepo-c", "libpam-wrapper", "python3-aiosmtpd"]
    assert "restic" in run_plan and "ansible-core" in run_plan
    assert [name for name in test_only if f" {name} " in f" {run_plan} ".replace(";", " ")] == []
    assert "selenium" not in run_plan and "pytest" not in run_plan
    assert all(f" {name}" in test_plan for name in test_only) and "selenium" in test_plan
    # STEWARD_FLAGS on make's command line is for the Makefile: in a recipe's environment steward would refuse it as an
    # unknown STEWARD_* setting.
    recipe_env = subprocess.run(["make", "--eval", "steward-env-check: ; @env", "steward-env-check", "STEWARD_FLAGS=--port 10443"],
                                capture_output=True, text=True, cwd=ROOT, timeout=60).stdout
    assert "PATH=" in recipe_env and [line for line in recipe_env.splitlines() if line.startswith("STEWARD_")] == []
