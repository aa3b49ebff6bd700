"""``mmeperf deploy sagemaker``, ``mmeperf dashboard`` and ``mmeperf cleanup``: real SageMaker MMEs.

Credentials, region and endpoint URLs come from boto3's usual chain and the standard
``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_<SERVICE>`` variables; boto3 is imported only on use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

from mmeperf.cli import CLI


def _say(message: str) -> None:
    typer.echo(message, err=True)


@contextmanager
def _typed_errors() -> Iterator[None]:
    """Print mmeperf's typed errors as one line and exit 2 (caller's mistake) or 1."""
    from mmeperf.errors import ConfigurationError, MmeperfError

    try:
        yield
    except MmeperfError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2 if isinstance(exc, ConfigurationError) else 1) from exc


def deploy_sagemaker(
    repository: str = typer.Option(..., "--repository", help="Model repository: a folder or fsspec URL (s3://...)."),
    name: str = typer.Option(..., "--name", help="Name of the endpoint (also of its model and endpoint config)."),
    instance_type: str = typer.Option(..., "--instance-type", help="SageMaker instance type, e.g. ml.c5.2xlarge."),
    instance_count: int = typer.Option(1, "--instance-count", min=1, help="Initial instances."),
    role: str | None = typer.Option(None, "--role", help="Execution role ARN that can read the S3 prefix."),
    image_uri: str | None = typer.Option(None, "--image-uri", help="Container image (default: XGBoost or Triton for the region)."),
    bucket: str | None = typer.Option(None, "--bucket", help="S3 bucket for the artifacts (default sagemaker-{region}-{account})."),
    prefix: str | None = typer.Option(None, "--prefix", help="S3 prefix (default mmeperf/{name}/)."),
    region: str | None = typer.Option(None, "--region", help="AWS region (default: boto3's chain)."),
    autoscale: bool = typer.Option(False, "--autoscale/--no-autoscale", help="Attach target-tracking autoscaling."),
    min_instances: int = typer.Option(2, "--min-instances", min=1, help="Autoscaling minimum."),
    max_instances: int = typer.Option(5, "--max-instances", min=1, help="Autoscaling maximum."),
    target_invocations: float = typer.Option(4000.0, "--target-invocations", min=1, help="InvocationsPerInstance per minute to hold."),
    scale_in_cooldown: int = typer.Option(600, "--scale-in-cooldown", min=0, help="Seconds."),
    scale_out_cooldown: int = typer.Option(300, "--scale-out-cooldown", min=0, help="Seconds."),
    dashboard: bool = typer.Option(True, "--dashboard/--no-dashboard", help="Create the CloudWatch dashboard."),
    production: bool = typer.Option(False, "--production", help="Warn unless at least two instances serve it."),
    allow_unknown_instance_type: bool = typer.Option(False, "--allow-unknown-instance-type", help="Skip the instance catalog check."),
    wait_timeout: float = typer.Option(1800.0, "--wait-timeout", min=1, help="Seconds to wait for InService."),
    poll_interval: float = typer.Option(15.0, "--poll-interval", min=0, help="Seconds between status checks."),
) -> None:
    """Deploy a model repository to a SageMaker multi-model endpoint (billed while it runs!)."""
    with _typed_errors():
        from mmeperf.cloud.autoscaling import AutoscalingPolicy
        from mmeperf.endpoints.sagemaker import SageMakerEndpoint
        from mmeperf.errors import ConfigurationError
        from mmeperf.repository import ModelRepository

        policy = None
        if autoscale:
            try:
                policy = AutoscalingPolicy(
                    min_capacity=min_instances, max_capacity=max_instances,
                    target_invocations_per_instance=target_invocations,
                    scale_in_cooldown_s=scale_in_cooldown, scale_out_cooldown_s=scale_out_cooldown,
                )
            except ValueError as exc:
                raise ConfigurationError(f"Invalid autoscaling options: {exc}") from exc
        endpoint = SageMakerEndpoint(
            name=name, instance_type=instance_type, instance_count=instance_count, role=role,
            image_uri=image_uri, bucket=bucket, prefix=prefix, region=region, autoscaling=policy,
            production=production, allow_unknown_instance_type=allow_unknown_instance_type,
            wait_timeout_s=wait_timeout, poll_interval_s=poll_interval, progress=_say,
        )
        endpoint.deploy(ModelRepository(repository, create=False))
        if dashboard:
            _say(f"dashboard {endpoint.create_dashboard()}")
        info = endpoint.info()
        typer.echo(f"{name} InService: {instance_count} x {instance_type} in {info.region}")
        typer.echo(f"runtime URL: {info.runtime_url}/endpoints/{name}/invocations")
        typer.echo(f"It is billed until you run: mmeperf cleanup --name {name}")


def dashboard_command(
    endpoints: list[str] = typer.Option(..., "--endpoint", help="Endpoint name; give it once or twice."),
    name: str | None = typer.Option(None, "--name", help="Dashboard name (default mmeperf-{endpoint}[--{endpoint2}])."),
    region: str | None = typer.Option(None, "--region", help="AWS region (default: boto3's chain)."),
    variant_name: str = typer.Option("AllTraffic", "--variant-name", help="Production variant."),
    cloudformation: Path | None = typer.Option(None, "--cloudformation", help="Also write the CloudFormation template here."),
    template_only: bool = typer.Option(False, "--template-only", help="Only write the template; create nothing."),
) -> None:
    """Create the reference CloudWatch dashboard for one or two endpoints."""
    with _typed_errors():
        from mmeperf.cloud.dashboard import cloudformation_template, put_dashboard
        from mmeperf.errors import ConfigurationError

        if not 1 <= len(endpoints) <= 2:
            raise ConfigurationError(f"Give --endpoint once or twice; received {len(endpoints)}")
        if template_only and cloudformation is None:
            raise ConfigurationError("--template-only needs --cloudformation PATH")
        if cloudformation is not None:
            cloudformation.write_text(cloudformation_template(endpoints=len(endpoints), variant_name=variant_name))
            params = " ".join(f"ParameterKey=EndpointName{i + 1},ParameterValue={e}" for i, e in enumerate(endpoints))
            typer.echo(f"wrote {cloudformation}; deploy with: aws cloudformation create-stack "
                       f"--stack-name mme-dashboard --template-body file://{cloudformation} --parameters {params}")
        if template_only:
            return
        from mmeperf.cloud.aws import AwsClients

        aws = AwsClients(region=region)
        created = put_dashboard(aws.client("cloudwatch"), endpoints, region=aws.region, name=name, variant_name=variant_name)
        typer.echo(f"dashboard {created} in {aws.region}")


def cleanup_command(
    name: str = typer.Option(..., "--name", help="Endpoint name given at deploy."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would be deleted; delete nothing."),
    delete_artifacts: bool = typer.Option(False, "--delete-artifacts", help="Also delete the S3 objects mmeperf uploaded."),
    region: str | None = typer.Option(None, "--region", help="AWS region (default: boto3's chain)."),
) -> None:
    """Delete an endpoint with its config, model, autoscaling, dashboard (and artifacts)."""
    with _typed_errors():
        from mmeperf.endpoints.sagemaker import SageMakerEndpoint

        endpoint = SageMakerEndpoint(name=name, region=region, progress=None if dry_run else _say)
        plan = endpoint.cleanup_plan(delete_artifacts=delete_artifacts)
        emit: Callable[[str], None] = typer.echo
        if plan.empty:
            emit(f"nothing to delete for {name!r}")
        else:
            emit("would delete:" if dry_run else "deleting:")
            for line in plan.lines():
                emit(f"  {line}")
        for kept in plan.kept_artifacts:
            emit(f"  keeping artifacts {kept}")
        if not dry_run and not plan.empty:
            endpoint.delete(delete_artifacts=delete_artifacts)
            emit("done")


def register(cli: CLI) -> None:
    cli.deploy.command("sagemaker")(deploy_sagemaker)
    cli.app.command("dashboard")(dashboard_command)
    cli.app.command("cleanup")(cleanup_command)
