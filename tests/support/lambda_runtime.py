"""AWS Lambda without AWS, for the Zappa tests (a pytest plugin, tests/conftest.py).

The `dev` environment is two functions (zappa_settings.json): the site (`dev`) and the encoder
(`dev_encoder`), which runs every job. Both live in this one process; `deliver` switches the
process to the stage it delivers to, as Lambda would run that stage's container.

- `lambda_runtime`: what a Lambda container of the `dev_encoder` stage gives Zappa's handler, with
  `deliver(event)` calling the entry point Zappa puts in the package. `web_runtime`: the same
  for the `dev` stage (the site).
- `lambda_api`: Lambda's API answered by moto, both deployed functions in it, and
  TRANSCODING_DISPATCH=zappa; yields the Invoke calls as botocore sent them.
"""

import importlib.util
import io
import json
import logging
import os
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import boto3
import moto  # noqa: F401  (imported before zappa, so the clients zappa makes at import go through moto)
import pytest
import zappa.asynchronous
import zappa.handler
from django.urls import set_script_prefix
from moto import mock_aws
from zappa.cli import ZappaCLI
from zappa.core import Zappa
from zappa.handler import LambdaHandler

ROOT = Path(__file__).resolve().parents[2]
SETTINGS_FILE = ROOT / "zappa_settings.json"
REGION = "us-east-1"
WEB_STAGE, ENCODER_STAGE = "dev", "dev_encoder"


def zappa_cli(stage: str) -> ZappaCLI:
    """The CLI with the stage's settings loaded as `zappa package` loads them (no credentials)."""
    cli = ZappaCLI()
    cli.api_stage = stage
    cli.load_credentials = False
    cli.load_settings(str(SETTINGS_FILE))
    return cli


def worker_setting(cli: ZappaCLI) -> str:
    """The stage's TRANSCODING_ZAPPA_WORKER_FUNCTION: the function its jobs are sent to."""
    return cli.stage_config["environment_variables"].get("TRANSCODING_ZAPPA_WORKER_FUNCTION", "")


@dataclass
class Runtime:
    cli: ZappaCLI
    settings: object
    django_settings: object
    archives: list = field(default_factory=list)

    def activate(self) -> None:
        """Make this process a container of this stage: its generated settings module, its
        function name, and its worker function (Django is configured already, so the stage's
        environment reaches os.environ but not the settings: that one setting is copied)."""
        sys.modules["zappa_settings"] = self.settings
        current = LambdaHandler._LambdaHandler__instance
        if current is not None and current.settings is not self.settings:
            LambdaHandler._LambdaHandler__instance = None  # another stage's container
        os.environ["AWS_LAMBDA_FUNCTION_NAME"] = self.cli.lambda_name
        self.django_settings.TRANSCODING_ZAPPA_WORKER_FUNCTION = worker_setting(self.cli)

    def deliver(self, event: dict):
        """What Lambda does with an event: call the entry point Zappa puts in the package."""
        self.activate()
        context = SimpleNamespace(
            function_name=self.cli.lambda_name,
            aws_request_id="test-request",
            get_remaining_time_in_millis=lambda: 900_000,
        )
        return zappa.handler.lambda_handler(json.loads(json.dumps(event)), context)

    def scheduled_event(self, function: str) -> dict:
        """The event EventBridge sends for the stage's schedule of `function`, under the rule name
        `zappa schedule` gives it (the handler reads the function back from that name)."""
        event = next(e for e in self.cli.stage_config["events"] if e["function"] == function)
        rule = Zappa(load_credentials=False, aws_region=REGION).get_scheduled_event_name(
            event, function, self.cli.lambda_name
        )
        return {
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": "123456789012",
            "region": REGION,
            "time": "2025-01-01T00:00:00Z",
            "detail": {},
            "version": "0",
            "id": "test-event",
            "resources": [f"arn:aws:events:{REGION}:123456789012:rule/{rule}"],
            "kwargs": {},
        }


def _stage_runtime(stage: str, tmp_path: Path, django_settings) -> Runtime:
    """The generated `zappa_settings` module of `stage` (the same text `zappa package` writes
    into the handler zip; `zappa save-python-settings-file` refuses slim_handler stages)."""
    cli = zappa_cli(stage)
    path = tmp_path / f"zappa_settings_{stage}.py"
    path.write_text(cli.get_zappa_settings_string())
    spec = importlib.util.spec_from_file_location("zappa_settings", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return Runtime(cli=cli, settings=module, django_settings=django_settings)


@pytest.fixture
def lambda_stages(tmp_path, monkeypatch, settings) -> dict[str, Runtime]:
    """Containers of both stages for Zappa's handler, by stage, the encoder's active: a fresh
    handler singleton, the region and credentials in the environment. The slim handler's download
    of the project archive from S3 is recorded, not done: the code is importable here already.
    Whatever the handler changes in the process (environment, sys.path, root log level, the
    URL prefix) is put back afterwards."""
    runtimes = {stage: _stage_runtime(stage, tmp_path, settings) for stage in (WEB_STAGE, ENCODER_STAGE)}
    monkeypatch.setitem(sys.modules, "zappa_settings", runtimes[ENCODER_STAGE].settings)
    monkeypatch.setattr(LambdaHandler, "_LambdaHandler__instance", None)
    monkeypatch.setattr(
        LambdaHandler,
        "load_remote_project_archive",
        lambda self, url: runtimes[self.settings.API_STAGE].archives.append(url) or True,
    )
    environ, sys_path, root_level = dict(os.environ), list(sys.path), logging.getLogger().level
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        os.environ.pop(key, None)
    os.environ.update(
        AWS_REGION=REGION,
        AWS_DEFAULT_REGION=REGION,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
    )
    runtimes[ENCODER_STAGE].activate()
    try:
        yield runtimes
    finally:
        os.environ.clear()
        os.environ.update(environ)
        sys.path[:] = sys_path
        logging.getLogger().setLevel(root_level)
        set_script_prefix("/")


@pytest.fixture
def lambda_runtime(lambda_stages) -> Runtime:
    """A container of the encoder stage (`dev_encoder`): where every job runs."""
    return lambda_stages[ENCODER_STAGE]


@pytest.fixture
def web_runtime(lambda_stages) -> Runtime:
    """A container of the site's stage (`dev`)."""
    return lambda_stages[WEB_STAGE]


@pytest.fixture
def lambda_api(lambda_stages, monkeypatch, settings):
    """Lambda's API answered by moto, both functions of the environment deployed in it, and
    TRANSCODING_DISPATCH=zappa. Yields the list of Invoke calls as sent: {"FunctionName",
    "InvocationType", "payload"}. An Invoke of a function that is not deployed fails, as on AWS."""
    settings.TRANSCODING_DISPATCH = "zappa"
    with mock_aws(config={"lambda": {"use_docker": False}}):
        session = boto3.Session(region_name=REGION)
        role = session.client("iam").create_role(RoleName="zappa-test", AssumeRolePolicyDocument="{}")
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as archive:
            archive.writestr("handler.py", "def lambda_handler(event, context):\n    return None\n")
        client = session.client("lambda")
        for runtime in lambda_stages.values():
            client.create_function(
                FunctionName=runtime.cli.lambda_name,
                Runtime=runtime.cli.runtime,
                Role=role["Role"]["Arn"],
                Handler="handler.lambda_handler",
                Code={"ZipFile": code.getvalue()},
            )
        invokes = []

        def record(params, **kwargs):
            invokes.append(
                {
                    "FunctionName": params["FunctionName"],
                    "InvocationType": params["InvocationType"],
                    "payload": json.loads(params["Payload"]),
                }
            )

        client.meta.events.register("before-parameter-build.lambda.Invoke", record)
        # Zappa makes this client when zappa.asynchronous is imported, from boto3.Session() and
        # the runtime's region; here that import came before the mock, so make it again inside.
        monkeypatch.setattr(zappa.asynchronous, "LAMBDA_CLIENT", client, raising=False)
        yield invokes
