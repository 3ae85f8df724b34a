"""The served OpenAPI document as outside tools use it: openapi-python-client generates a typed client for every
operation without a warning, and that client reads and changes Steward; schemathesis fuzzes every operation with a
viewer's and an admin's token and finds no server error and no reply that breaks the document."""
import importlib
import json
import pathlib
import re
import subprocess
import sys
import tempfile

import pytest

from conftest import Api, _binary, _free_port, make_token, start_steward, steward_environment, stop_steward, wait_job
from test_openapi import viewer_api

# YAML and NDJSON are not among the generator's body types: the rule file a client downloads is text, the file it
# uploads is bytes, and the job log stream is text. The export is sent as "application/yaml; charset=utf-8", so the
# two YAML directions can be mapped separately.
GENERATOR_CONFIG = """\
content_type_overrides:
  application/yaml: application/octet-stream
  "application/yaml; charset=utf-8": text/plain
  application/x-ndjson: text/plain
"""


def snake(name):
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


@pytest.fixture(scope="module")
def document(api):
    status, body = api.call("GET", "/api/openapi.json")
    assert status == 200
    return body


@pytest.fixture(scope="module")
def client_package(document, tmp_path_factory):
    """Generate the client into a temporary directory and import it."""
    where = tmp_path_factory.mktemp("client")
    (where / "openapi.json").write_text(json.dumps(document))
    (where / "config.yml").write_text(GENERATOR_CONFIG)
    run = subprocess.run(
        ["openapi-python-client", "generate", "--path", str(where / "openapi.json"), "--config", str(where / "config.yml"),
         "--meta", "none", "--output-path", str(where / "steward_client")],
        capture_output=True, text=True, timeout=300)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    # Every operation generated: the tool says "Warning" for each endpoint, response or schema it leaves out.
    assert "warning" not in output.lower() and "Unable to" not in output, output
    sys.path.insert(0, str(where))
    try:
        package = importlib.import_module("steward_client")
        importlib.import_module("steward_client.models")
        yield package
    finally:
        sys.path.remove(str(where))


def operation_module(package, tag, operation_id):
    return importlib.import_module(f"{package.__name__}.api.{tag}.{snake(operation_id)}")


def find_or_create(api, path, body):
    """The item of `path` named body["name"], created when it is not there yet."""
    status, made = api.call("POST", path, body)
    if status == 201:
        return made
    return next(item for item in api.call("GET", path)[1]["items"] if item["name"] == body["name"])


def client_for(package, steward, token):
    return package.AuthenticatedClient(base_url=steward.base_url, token=token, verify_ssl=False, timeout=60.0)


def test_the_generated_client_covers_every_operation(document, client_package):
    """One generated function per documented operation, each under its tag."""
    missing = []
    count = 0
    for path, item in document["paths"].items():
        for method, operation in item.items():
            count += 1
            try:
                module = operation_module(client_package, operation["tags"][0], operation["operationId"])
                assert hasattr(module, "sync_detailed")
            except (ImportError, AssertionError):
                missing.append(f"{method.upper()} {path} ({operation['operationId']})")
    assert not missing, missing
    assert count >= 100


def test_every_read_operation_through_the_generated_client_returns_typed_results(document, client_package, api, steward, account):
    """Each GET, called as a viewer through the generated client, answers 200 and parses into the generated type
    (a model, or text for the log stream and the rule file), never into the error type."""
    reader = viewer_api(steward, account)
    client = client_for(client_package, steward, reader.token)
    admin = client_for(client_package, steward, api.token)
    status, hosts = api.call("GET", "/api/v1/hosts")
    # A job to read, and facts for the accounts view: gather facts now from its schedule (it only reads).
    status, schedules = api.call("GET", "/api/v1/schedules")
    gather = next(s for s in schedules["items"] if s["job_kind"] == "facts.gather")
    status, started = api.call("POST", f"/api/v1/schedules/{gather['id']}/run")
    assert status == 202, started
    status, rules = api.call("GET", "/api/v1/alerts/rules")
    status, plans = api.call("GET", "/api/v1/backups/plans")
    status, policies = api.call("GET", "/api/v1/retention/policies")
    self_plan = next(p for p in plans["items"] if p["builtin"] == "self")
    # The panel host: other tests' fleet hosts may be disabled or have no facts. Its snapshots may live in
    # repositories other tests have removed (restic then fails, a 502), so a host's snapshots are read for a host of
    # this test's own, which has no plans.
    panel = next(h for h in hosts["items"] if h["transport"] == "local")
    status, reader_host = api.call("POST", "/api/v1/hosts", {"name": "generated-client-reader", "address": "192.0.2.51", "enabled": False})
    assert status in (201, 409), reader_host
    if status == 409:
        reader_host = next(h for h in api.call("GET", "/api/v1/hosts")[1]["items"] if h["name"] == "generated-client-reader")
    job_id = wait_job(api, started["id"])["id"]
    check = find_or_create(api, "/api/v1/checks", {"name": "generated-client-check", "target": steward.base_url + "/readyz"})
    slo = find_or_create(api, "/api/v1/slos", {"name": "generated-client-slo", "sli": "probe", "check": "generated-client-check"})
    # Values for path and required query parameters, by name, from the lists above.
    arguments = {
        "getHost": {"id": panel["id"]}, "hostAccounts": {"id": panel["id"]},
        "getJob": {"id": job_id}, "jobHostResults": {"id": job_id}, "streamJobLog": {"id": job_id, "follow": False},
        "streamLogs": {"follow": False},
        "getAlertRule": {"id": rules["items"][0]["id"]},
        "getBackupPlan": {"id": self_plan["id"]}, "listBackupPlanSnapshots": {"id": self_plan["id"]},
        "listBackupRuns": {"id": self_plan["id"]},
        "getBackupRepository": {"id": self_plan["repository_id"]}, "listBackupSnapshots": {"id": self_plan["repository_id"]},
        "listBackupHostSnapshots": {"id": reader_host["id"]}, "hostServices": {"id": reader_host["id"]},
        "hostProcesses": {"id": reader_host["id"]}, "hostOverview": {"id": reader_host["id"]}, "hostPackages": {"id": reader_host["id"]},
        "hostCron": {"id": reader_host["id"]}, "hostDisksNetwork": {"id": reader_host["id"]},
        "searchHostPackages": {"id": panel["id"], "q": "bash"}, "fleetPackage": {"name": "bash"},
        "getSchedule": {"id": schedules["items"][0]["id"]},
        "getRetentionPolicy": {"class_": policies["items"][0]["data_class"]},
        "queryRange": {"name": "steward_host_up", "host": "localhost"},
        "promqlQuery": {"query": "steward_host_up"}, "promqlRange": {"query": "max by (host) (steward_host_up)", "range_": "10m"},
        "getCheck": {"id": check["id"]}, "getSlo": {"id": slo["id"]}, "sloBudgetHistory": {"id": slo["id"]},
    }
    # Reads that need something this server has not made yet (a rollout, a snapshot to browse) or that are
    # above a viewer (the audit log: auditor or admin).
    as_admin = {"listAuditEvents"}
    needs = {"getRollout": "a rollout", "browseBackupSnapshot": "a snapshot", "downloadBackupFile": "a snapshot",
             "hostServiceUnit": "a unit in a host's services reading"}
    problem_type = client_package.models.Problem
    called, wrong = [], []
    for path, item in sorted(document["paths"].items()):
        operation = item.get("get")
        if operation is None or operation["operationId"] in needs:
            continue
        operation_id = operation["operationId"]
        module = operation_module(client_package, operation["tags"][0], operation_id)
        response = module.sync_detailed(client=admin if operation_id in as_admin else client, **arguments.get(operation_id, {}))
        parsed = response.parsed
        if response.status_code != 200 or parsed is None or isinstance(parsed, problem_type):
            wrong.append(f"{operation_id}: {response.status_code} {response.content[:300]!r}")
            continue
        called.append(operation_id)
    assert not wrong, "\n".join(wrong)
    assert len(called) >= 40, called


def test_an_admin_creates_changes_and_deletes_through_the_generated_client(client_package, api, steward, tmp_path):
    """A host, a group, a backup repository (and a plan with its schedule), and a silence: created, changed and
    removed with the generated functions and models, as a script would."""
    client = client_for(client_package, steward, api.token)
    models = client_package.models
    hosts_api = f"{client_package.__name__}.api.hosts"
    create_host = importlib.import_module(f"{hosts_api}.create_host")
    update_host = importlib.import_module(f"{hosts_api}.update_host")
    delete_host = importlib.import_module(f"{hosts_api}.delete_host")
    get_host = importlib.import_module(f"{hosts_api}.get_host")
    host = create_host.sync(client=client, body=models.HostCreate.from_dict(
        {"name": "generated-client-host", "address": "192.0.2.50", "groups": ["generated_web"], "enabled": False}))
    assert isinstance(host, models.Host) and host.name == "generated-client-host" and host.groups == ["generated_web"], host
    changed = update_host.sync(id=host.id, client=client, body=models.HostInput.from_dict({"notes": "made by the generated client"}))
    assert isinstance(changed, models.Host) and changed.notes == "made by the generated client", changed
    assert get_host.sync(id=host.id, client=client).address == "192.0.2.50"

    save_group = importlib.import_module(f"{hosts_api}.save_group")
    list_groups = importlib.import_module(f"{hosts_api}.list_groups")
    delete_group = importlib.import_module(f"{hosts_api}.delete_group")
    group = save_group.sync(name="generated_web", client=client, body=models.GroupInput.from_dict(
        {"notes": "web servers", "variables": "http_port: 8080\n"}))
    assert isinstance(group, models.Group) and group.notes == "web servers", group
    assert group.variables.to_dict() == {"http_port": 8080}
    assert delete_host.sync_detailed(id=host.id, client=client).status_code == 204
    assert delete_group.sync_detailed(name="generated_web", client=client).status_code == 204
    assert "generated_web" not in [g.name for g in list_groups.sync(client=client).items]
    assert get_host.sync_detailed(id=host.id, client=client).status_code == 404

    backups_api = f"{client_package.__name__}.api.backups"
    create_repository = importlib.import_module(f"{backups_api}.create_backup_repository")
    delete_repository = importlib.import_module(f"{backups_api}.delete_backup_repository")
    create_plan = importlib.import_module(f"{backups_api}.create_backup_plan")
    delete_plan = importlib.import_module(f"{backups_api}.delete_backup_plan")
    tmp_path.chmod(0o711)
    source = tmp_path / "source"
    source.mkdir()
    (source / "file.txt").write_text("backed up by a generated client\n")
    repository = create_repository.sync(client=client, body=models.BackupRepositoryInput.from_dict(
        {"name": "generated client repo", "path": str(tmp_path / "repo"), "password": "generated-client-password"}))
    assert isinstance(repository, models.BackupRepository), repository
    plan = create_plan.sync(client=client, body=models.BackupPlanCreate.from_dict(
        {"name": "generated client plan", "repository": repository.id, "paths": [str(source)], "keep_last": 2}))
    assert isinstance(plan, models.BackupPlan), plan
    schedules_api = f"{client_package.__name__}.api.schedules"
    update_schedule = importlib.import_module(f"{schedules_api}.update_schedule")
    get_schedule = importlib.import_module(f"{schedules_api}.get_schedule")
    schedule_id = plan.backup_schedule_id
    updated = update_schedule.sync(id=schedule_id, client=client, body=models.ScheduleUpdate.from_dict(
        {"cron": "15 3 * * *", "time_zone": "Europe/Berlin", "enabled": False}))
    assert isinstance(updated, models.Schedule) and updated.cron == "15 3 * * *" and updated.enabled is False, updated
    assert delete_plan.sync_detailed(id=plan.id, client=client).status_code == 204
    assert get_schedule.sync_detailed(id=schedule_id, client=client).status_code == 404
    assert delete_repository.sync_detailed(id=repository.id, client=client).status_code == 204

    alerts_api = f"{client_package.__name__}.api.alerts"
    create_silence = importlib.import_module(f"{alerts_api}.create_silence")
    list_silences = importlib.import_module(f"{alerts_api}.list_silences")
    expire_silence = importlib.import_module(f"{alerts_api}.expire_silence")
    silence = create_silence.sync(client=client, body=models.SilenceInput.from_dict(
        {"matchers": "host=generated-client-host", "comment": "generated client test", "duration": "1h"}))
    assert isinstance(silence, models.Silence) and silence.active, silence
    assert expire_silence.sync_detailed(id=silence.id, client=client).status_code == 204
    ended = next(s for s in list_silences.sync(client=client).items if s.id == silence.id)
    assert not ended.active
    # A wrong field comes back as the generated Problem type, naming the field.
    refused = create_silence.sync(client=client, body=models.SilenceInput.from_dict({"matchers": "host=x", "comment": ""}))
    assert isinstance(refused, models.Problem) and "comment" in refused.errors.to_dict(), refused


# The fuzzing runs against a Steward of their own, so what they create and delete cannot disturb other tests. What
# the admin run leaves out is what would change the panel host itself rather than Steward's records: accounts on
# hosts (users, groups, desired state, converge), ad-hoc commands and playbooks, rollouts (they apply updates),
# restores (they write files), backup runs, prunes, verifies and schedule runs (restic on this machine's files),
# creating a backup repository or changing its password (restic writes at the given path). Every read is included,
# with both tokens.
ADMIN_EXCLUDED_OPERATIONS = [
    "changeUser", "changeGroup", "saveDesiredUser", "saveDesiredGroup", "convergeDesiredUser", "convergeDesiredGroup",
    "runAdhoc", "runPlaybook", "createRollout", "updateRollout", "approveRollout", "denyRollout", "pauseRollout", "resumeRollout",
    "abortRollout", "rollbackRollout", "restoreBackupSnapshot", "runBackupPlan", "pruneBackupPlan", "verifyBackupPlan",
    "runSchedule", "createBackupRepository", "setBackupRepositoryPassword",
    # Host administration: a unit action, a signal, a package or cron change, or a converge would act on the panel host
    # (the only host of the fuzzed Steward) once a refresh has read it.
    "changeHostServiceUnit", "signalHostProcess", "changeHostPackage", "changeHostCronEntry", "convergeDesiredService",
    # Running a check makes a request to whatever the fuzzer named as its target, and waits up to its timeout.
    "runCheck",
]

# One check is left out for some operations: "a request the schema allows is accepted". These operations check
# what JSON Schema cannot say, so a body the schema allows can still be refused with a 422 naming the field: cron
# expressions, IANA time zones and calendar dates (schedules, backup plans, maintenance windows, the audit log's
# since/until), rules between fields (a warning
# level below the critical one, an end after the start, "name or series"), names that must exist (a host, a
# repository, a metric source), a YAML rule file given as bytes, and a unit definition kept at the path its unit
# names, a log search's custom range (from and to are needed with range=custom) and host names, a syslog sender's
# address or CIDR range, a log file's path (under /var/log, patterns in the file name only), and a remote-write
# endpoint's URL (http or https, no credentials in it) with the token or password its authentication needs, a check's
# target (a URL or host:port, not link-local), its host and a timeout within its interval, an SLO's PromQL, check and
# hosts, Sloth or OpenSLO YAML given as bytes, the export's format and the budget history's hours, and a snapshot file's
# path (no NUL or line break). Every other
# check, server errors and reply
# schemas included, runs on them too.
CONFIG_TEMPLATE = """\
[[operations]]
include-operation-id = [
  "queryRange", "listSeries", "importAlertRules", "previewSchedule", "updateSchedule", "createBackupPlan", "updateBackupPlan",
  "createMaintenanceWindow", "createAlertRule", "updateAlertRule", "createSilence", "createChannel", "createHost", "updateHost",
  "saveGroup", "createLegalHold", "listAuditEvents", "saveDesiredService", "searchLogs", "createSyslogSender", "createLogFile",
  "promqlQuery", "promqlRange", "createRemoteWrite", "updateRemoteWrite", "downloadBackupFile", "createCheck", "updateCheck", "createSlo", "updateSlo",
  "importSlos", "exportSlos", "sloBudgetHistory",
]
checks.positive_data_acceptance.enabled = false
"""


@pytest.fixture(scope="module")
def fuzz_target(account):
    """A Steward of its own, with an admin and a viewer token for the throwaway account."""
    with tempfile.TemporaryDirectory(prefix="steward-fuzzed-") as temp:
        data = pathlib.Path(temp) / "data"
        subprocess.run([str(_binary()), "role", "grant", "admin", "--user", account.name, "--data", str(data)],
                       check=True, env=steward_environment(), cwd="/", capture_output=True)
        running = start_steward(data, pathlib.Path(temp) / "steward.log", _free_port())
        try:
            admin = make_token(data, account.name)
            viewer = viewer_api(running, account).token
            yield running, admin, viewer
        finally:
            stop_steward(running)


def run_schemathesis(steward, token, tmp_path, extra):
    schema = tmp_path / "openapi.json"
    status, document = Api(steward, token).call("GET", "/api/openapi.json")
    assert status == 200
    schema.write_text(json.dumps(document))
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG_TEMPLATE)
    run = subprocess.run(
        ["schemathesis", "--config-file", str(config), "--no-color", "run", str(schema), "--url", steward.base_url,
         "--header", f"Authorization: Bearer {token}", "--tls-verify", "false", "--max-examples", "15",
         # One worker: with two, hypothesis parses lambda sources from two threads at once, which CPython 3.11's ast
         # module does not survive ("AST constructor recursion depth mismatch"), and schemathesis reports an error.
         "--workers", "1", "--seed", "20261206",
         # follow=true streams new log lines until the client leaves: by design it never ends a response.
         "--exclude-operation-id", "streamLogs", *extra],
        capture_output=True, text=True, timeout=1200, cwd=tmp_path)
    return run.returncode, run.stdout + run.stderr


def test_schemathesis_finds_nothing_with_a_viewer_token(fuzz_target, tmp_path):
    steward, admin, viewer = fuzz_target
    code, output = run_schemathesis(steward, viewer, tmp_path, [])
    assert code == 0, output[-20000:]


def test_schemathesis_finds_nothing_with_an_admin_token(fuzz_target, tmp_path):
    steward, admin, viewer = fuzz_target
    excluded = []
    for operation_id in ADMIN_EXCLUDED_OPERATIONS:
        excluded += ["--exclude-operation-id", operation_id]
    code, output = run_schemathesis(steward, admin, tmp_path, excluded)
    assert code == 0, output[-20000:]
