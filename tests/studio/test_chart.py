"""The chart's optional studio: Deployment, Service, Ingress; no rights of its own; args the CLI accepts."""

from __future__ import annotations

import pytest
import typer.main

from musicgen_ops.cli import app as cli_app
from tests.chart.conftest import (  # noqa: F401  (pytest fixtures, imported to be used here)
    CHART_DIR,
    chart,
    load_values,
    render,
    render_raw,
)
from tests.chart.manifests import find, one

STUDIO = "musicgen-studio"


def studio_args(docs) -> list[str]:
    deployment = one(docs, "Deployment", STUDIO)
    return deployment["spec"]["template"]["spec"]["containers"][0]["args"]


def test_the_studio_is_off_by_default(render):  # noqa: F811
    docs = render({})
    assert not [d for d in docs if d["metadata"]["name"].startswith(STUDIO)]


def test_the_studio_acts_as_the_caller_with_no_rights_of_its_own(render):  # noqa: F811
    docs = render(load_values(CHART_DIR / "ci" / "studio-values.yaml"))
    account = one(docs, "ServiceAccount", STUDIO)
    assert account["automountServiceAccountToken"] is False
    pod = one(docs, "Deployment", STUDIO)["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == STUDIO and pod["automountServiceAccountToken"] is False
    for binding in find(docs, "RoleBinding") + find(docs, "ClusterRoleBinding"):
        assert all(subject["name"] != STUDIO for subject in binding.get("subjects", []))
    container = pod["containers"][0]
    assert (
        container["securityContext"]["readOnlyRootFilesystem"] is True
        and pod["securityContext"]["runAsNonRoot"]
    )
    assert {v["name"]: v for v in pod["volumes"]}["kubernetes-ca"]["configMap"]["name"] == "kube-root-ca.crt"
    args = studio_args(docs)
    assert {"--backend=kubernetes", "--artifacts-uri=s3://musicgen/", "--namespace=music"} <= set(args)
    service = one(docs, "Service", STUDIO)
    assert service["spec"]["ports"][0]["port"] == 80
    ingress = one(docs, "Ingress", STUDIO)
    assert ingress["spec"]["rules"][0]["host"] == "studio.example.com"
    assert ingress["spec"]["tls"][0]["secretName"] == "studio-tls"


def test_the_container_args_are_options_the_studio_command_accepts(render):  # noqa: F811
    args = studio_args(render({"studio": {"enabled": True}}))
    assert args[0] == "studio"
    command = typer.main.get_command(cli_app).commands["studio"]
    context = command.make_context("studio", args[1:])
    assert context.params["backend"] == "kubernetes" and context.params["port"] == 8765
    assert context.params["namespace"] == "musicgen" and str(context.params["kube_ca_file"]).endswith(
        "ca.crt"
    )


def test_a_typo_in_the_studio_values_fails_the_schema(render_raw):  # noqa: F811
    with pytest.raises(Exception, match="enabeld|additional"):
        render_raw({"studio": {"enabeld": True}})


def test_the_studio_options_render_into_args_the_cli_reads_back(render):  # noqa: F811
    options = {
        "maxUploadMb": 512,
        "maxInputMb": 32,
        "retentionDays": 2.5,
        "directUploadMinMb": 0.5,
        "servingTimeoutSeconds": 90,
        "logLevel": "info",
    }
    args = studio_args(render({"studio": {"enabled": True, **options}}))
    assert {
        "--max-upload-mb=512",
        "--max-input-mb=32",
        "--retention-days=2.5",
        "--direct-upload-min-mb=0.5",
        "--serving-timeout=90",
        "--uvicorn-log-level=info",
    } <= set(args)
    assert not [arg for arg in args if arg.startswith("--mbd")]  # the operator's MBD setting applies
    command = typer.main.get_command(cli_app).commands["studio"]
    params = command.make_context("studio", args[1:]).params
    assert (params["max_upload_mb"], params["max_input_mb"], params["direct_upload_min_mb"]) == (512, 32, 0.5)
    assert (params["serving_timeout"], params["log_level"], params["retention_days"]) == (90, "info", 2.5)
    defaults = command.make_context("studio", studio_args(render({"studio": {"enabled": True}}))[1:]).params
    names = ("max_upload_mb", "max_input_mb", "direct_upload_min_mb", "serving_timeout", "log_level")
    for name in (*names, "retention_days"):
        assert defaults[name] == command.make_context("studio", []).params[name], name  # same defaults


@pytest.mark.parametrize(
    ("values", "needle"),
    [
        ({"maxUploadMb": 0}, "maxUploadMb"),
        ({"maxInputMb": 0}, "maxInputMb"),
        ({"retentionDays": 0}, "retentionDays"),
        ({"directUploadMinMb": -1}, "directUploadMinMb"),
        ({"directUploadMinMb": "8Mi"}, "directUploadMinMb"),
        ({"servingTimeoutSeconds": 0}, "servingTimeoutSeconds"),
        ({"logLevel": "loud"}, "logLevel"),
    ],
)
def test_the_schema_refuses_bad_studio_options(chart, values, needle):  # noqa: F811
    helm = pytest.importorskip("helm_python")
    with pytest.raises(helm.HelmValuesError) as excinfo:
        chart.validate_schema({"studio": {"enabled": True, **values}})
    assert needle in str(excinfo.value)
