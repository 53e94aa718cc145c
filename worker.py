"""The cutover worker: the composition root that wires providers into activities and runs them.

Run it where the secrets live: plans only name environment variables (TSIG secret, Kong token,
webhook URLs, Google key files) and this process resolves them, only for the destinations its
worker policy binds them to (docs/security.md).

    python worker.py --policy /etc/cutover/policy.yaml   # or CUTOVER_POLICY=...; TEMPORAL_ADDRESS, ...
    CUTOVER_POLICY=dev python worker.py                  # a laptop: loopback destinations only
    python worker.py --policy P --metrics 0.0.0.0:9464 --register-search-attributes
    CUTOVER_DEPLOYMENT_NAME=cutover CUTOVER_BUILD_ID=2026-05-01.1 python worker.py --policy P   # Worker Versioning
    python worker.py --replay-check --since 7d        # before a deploy: replay open and recent runs

Without a policy the worker refuses to start (exit 2): a production worker must never run on a
laptop's defaults by accident, and ``dev`` is an explicit choice that reaches loopback only.
The Temporal connection (address, namespace, API key, TLS and mTLS, profiles) comes from the same
variables the ``temporal`` CLI reads; see settings.py. ``CUTOVER_PAYLOAD_KEYS`` turns on payload
encryption (connection/codec.py). With a deployment name and build id the worker uses Worker
Versioning and every run stays pinned to the build that started it; ``--otel`` (``CUTOVER_OTEL=1``)
adds OpenTelemetry tracing when the package is installed (connection/tracing.py).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.common import VersioningBehavior, WorkerDeploymentVersion
from temporalio.converter import DataConverter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Interceptor, Replayer, Worker, WorkerDeploymentConfig
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.campaign import CampaignActivities
from activities.decommission import DecommissionActivities
from activities.dns import DnsActivities
from activities.heartbeats import HEARTBEAT_FLUSH_SECONDS
from activities.kong import KongActivities
from activities.locks import LockActivities
from activities.monitor import MonitorActivities
from activities.notify import NotifyActivities
from activities.policy import PolicyActivities
from activities.readiness import ReadinessActivities
from cli import replay_check
from connection.tracing import OTEL_VARIABLE, tracing_interceptors, tracing_requested
from models.durations import parse_duration
from providers.policy_file import POLICY_VARIABLE, PolicyFileError, load_policy, policy_source
from providers.secrets import EnvSecrets
from settings import SEARCH_ATTRIBUTES, TemporalConfigError, TemporalSettings, search_attribute_commands
from workflows import metrics
from workflows.registry import WORKFLOWS

log = logging.getLogger("cutover.worker")

DEPLOYMENT_VARIABLE = "CUTOVER_DEPLOYMENT_NAME"
BUILD_ID_VARIABLE = "CUTOVER_BUILD_ID"


class ActivityGroup(Protocol):
    """An activities class: providers injected, activities listed for registration."""

    def activities(self) -> list[Callable[..., Any]]:
        """The bound activity methods to register."""
        ...


class MissingSearchAttributes(RuntimeError):
    """The namespace lacks cutover's search attributes: workflows would hang on their first upsert."""


_NOT_ALLOWED = (RPCStatusCode.PERMISSION_DENIED, RPCStatusCode.UNAUTHENTICATED, RPCStatusCode.UNIMPLEMENTED)
"""What a server answers when this client may not manage search attributes (Temporal Cloud's answer)."""


def build_activities(client: Client, secrets: EnvSecrets | None = None) -> list[Callable[..., Any]]:
    """Every activity of cutover, bound to providers that read secrets (and the worker policy) from ``secrets``.

    ``client`` is the worker's own Temporal client, for the lock look-up and the campaign's reads and approvals
    of its cutovers.
    """
    secrets = secrets or EnvSecrets()
    groups: list[ActivityGroup] = [
        PolicyActivities(secrets=secrets),
        DnsActivities(secrets=secrets),
        KongActivities(secrets=secrets),
        ReadinessActivities(guard=secrets.guard),
        MonitorActivities(secrets=secrets),
        DecommissionActivities(secrets=secrets),
        NotifyActivities(secrets=secrets),
        LockActivities(client),
        CampaignActivities(client),
    ]
    return [fn for group in groups for fn in group.activities()]


async def ensure_search_attributes(client: Client, namespace: str, register: bool) -> None:
    """Check the custom search attributes exist; create them if asked, else say exactly what to run."""
    try:
        response = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
    except RPCError as exc:
        if exc.status not in _NOT_ALLOWED:
            raise
        # Some deployments let a worker run workflows but not read the namespace's schema: go on, and say
        # what to check, since a missing attribute would stall every run.
        log.warning(
            "cannot list search attributes in namespace %s (%s: %s): make sure %s exist (Keyword):\n%s",
            namespace,
            exc.status.name,
            exc.message,
            " and ".join(SEARCH_ATTRIBUTES),
            search_attribute_commands(),
        )
        return
    missing = [name for name in SEARCH_ATTRIBUTES if name not in response.custom_attributes]
    if not missing:
        return
    if register:
        try:
            await client.operator_service.add_search_attributes(
                AddSearchAttributesRequest(
                    namespace=namespace,
                    search_attributes={name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for name in missing},
                )
            )
        except RPCError as exc:
            if exc.status not in _NOT_ALLOWED:
                raise
            raise MissingSearchAttributes(
                f"namespace {namespace!r} lacks the search attributes {', '.join(missing)} and this client may not "
                f"create them ({exc.status.name}: {exc.message}). On Temporal Cloud, search attributes are created "
                f"in the Cloud UI or with tcld, not through the namespace's endpoint; elsewhere ask an admin of the "
                f"cluster:\n{search_attribute_commands()}"
            ) from None
        log.info("registered search attributes %s in namespace %s", ", ".join(missing), namespace)
        return
    raise MissingSearchAttributes(
        f"namespace {namespace!r} lacks the search attributes {', '.join(missing)}; without them every cutover "
        f"would stay Running with failing workflow tasks. Register them:\n{search_attribute_commands()}"
    )


def workflow_runner() -> SandboxedWorkflowRunner:
    """The default workflow sandbox, with ``cryptography`` passed through.

    The approve validator verifies SSH signatures (models/approval_signature.py). cryptography's Rust
    extension imports its exception types lazily, and inside the sandbox that import would re-import the
    extension per run and abort the process; passed through, it is imported once, like the models.
    Every worker (and Replayer) running CutoverWorkflow with signed approvals needs this runner.
    """
    return SandboxedWorkflowRunner(restrictions=SandboxRestrictions.default.with_passthrough_modules("cryptography"))


class VersioningError(ValueError):
    """The Worker Versioning settings are incomplete or unusable."""


def deployment_config(deployment_name: str | None, build_id: str | None) -> WorkerDeploymentConfig | None:
    """Worker Versioning for this build, or None (unversioned) when neither is given.

    Every run is pinned to the build that started it (``PINNED``): an open run never meets newer code,
    so a deploy can't break it; old builds keep serving their runs until they drain. The lock child
    workflow is pinned the same way.

    Raises:
        VersioningError: only one of the two is given, or the deployment name has a dot (Temporal's
            canonical version string is ``<deployment>.<build id>``).
    """
    if not deployment_name and not build_id:
        return None
    problems = []
    if not deployment_name:
        problems.append(f"a build id without a deployment name: set {DEPLOYMENT_VARIABLE} or --deployment-name")
    elif "." in deployment_name:
        problems.append(f"the deployment name {deployment_name!r} may not contain '.'")
    if not build_id:
        problems.append(f"a deployment name without a build id: set {BUILD_ID_VARIABLE} or --build-id")
    if problems:
        raise VersioningError("Worker Versioning: " + "; ".join(problems))
    assert deployment_name and build_id
    return WorkerDeploymentConfig(
        version=WorkerDeploymentVersion(deployment_name=deployment_name, build_id=build_id),
        use_worker_versioning=True,
        default_versioning_behavior=VersioningBehavior.PINNED,
    )


def build_replayer(data_converter: DataConverter, workflows: Sequence[type[Any]] = WORKFLOWS) -> Replayer:
    """A Replayer running the worker's workflows exactly as ``build_worker`` does (converter, sandbox)."""
    return Replayer(workflows=list(workflows), data_converter=data_converter, workflow_runner=workflow_runner())


def build_worker(
    client: Client,
    task_queue: str,
    activities: Sequence[Callable[..., Any]],
    max_concurrent_activities: int = 200,
    shutdown_grace: float = 10.0,
    *,
    deployment: WorkerDeploymentConfig | None = None,
    interceptors: Sequence[Interceptor] = (),
) -> Worker:
    """A worker for every workflow of cutover (``workflows.registry.WORKFLOWS``) and the given activities.

    Versioned when ``deployment`` is given.
    """
    options: dict[str, Any] = {"deployment_config": deployment} if deployment else {}
    return Worker(
        client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        activities=list(activities),
        workflow_runner=workflow_runner(),
        interceptors=list(interceptors),
        **options,
        max_concurrent_activities=max_concurrent_activities,
        graceful_shutdown_timeout=timedelta(seconds=shutdown_grace),
        # Heartbeats carry cancellation (abort) and resume points (monitoring): flush them often.
        max_heartbeat_throttle_interval=timedelta(seconds=HEARTBEAT_FLUSH_SECONDS),
        default_heartbeat_throttle_interval=timedelta(seconds=HEARTBEAT_FLUSH_SECONDS),
    )


def metrics_runtime(bind_address: str) -> Runtime:
    """A runtime serving the SDK's and cutover's metrics (workflows/metrics.py) for Prometheus on ``bind_address``."""
    prometheus = PrometheusConfig(bind_address=bind_address, histogram_bucket_overrides=metrics.HISTOGRAM_BUCKETS)
    return Runtime(telemetry=TelemetryConfig(metrics=prometheus))


def setup_logging(level: str, cloud_logging: str) -> None:
    """Standard logging; on GCP (or when asked) also a google-cloud-logging handler."""
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    on_gcp = bool(os.environ.get("GOOGLE_CLOUD_PROJECT") or os.environ.get("K_SERVICE"))
    if cloud_logging == "on" or (cloud_logging == "auto" and on_gcp):
        import google.cloud.logging

        google.cloud.logging.Client().setup_logging(  # type: ignore[no-untyped-call]
            log_level=getattr(logging, level.upper())
        )
        log.info("logging to Google Cloud Logging")


async def serve(args: argparse.Namespace) -> int:
    """Load the policy, connect, check search attributes, run until SIGTERM/SIGINT, then shut down gracefully."""
    source = policy_source(args.policy)
    if source is None:
        print(
            f"error: no worker policy: pass --policy FILE or set {POLICY_VARIABLE}=FILE (docs/security.md has a "
            f"production example); on a laptop, {POLICY_VARIABLE}=dev allows loopback destinations only",
            file=sys.stderr,
        )
        return 2
    try:
        policy = load_policy(source)
    except PolicyFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    log.info("worker policy: %s", policy.name)
    try:
        deployment = deployment_config(args.deployment_name, args.build_id)
    except VersioningError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runtime = None
    if args.metrics:
        runtime = metrics_runtime(args.metrics)
        log.info("SDK and cutover metrics on http://%s/metrics", args.metrics)
    try:
        settings = TemporalSettings.from_env().override(address=args.address, namespace=args.namespace)
        client = await settings.connect(runtime=runtime)
        await ensure_search_attributes(client, settings.namespace, args.register_search_attributes)
    except (TemporalConfigError, MissingSearchAttributes) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    task_queue = args.task_queue or settings.task_queue
    activities = build_activities(client, EnvSecrets(policy=policy))
    interceptors: list[Interceptor] = []
    if tracing_requested(args.otel):
        interceptors, tracing = tracing_interceptors()
        log.info("%s", tracing)
    worker = build_worker(
        client,
        task_queue,
        activities,
        args.max_concurrent_activities,
        args.shutdown_grace,
        deployment=deployment,
        interceptors=interceptors,
    )
    if deployment is None:
        log.info(
            "Worker Versioning off (%s and %s not set): this worker is unversioned, and a deploy replays open runs "
            "with the new code (run --replay-check first)",
            DEPLOYMENT_VARIABLE,
            BUILD_ID_VARIABLE,
        )
    else:
        version = deployment.version
        log.info(
            "Worker Versioning: deployment %s, build %s; runs stay pinned to the build that started them "
            "(make it current: temporal worker deployment set-current-version --deployment-name %s --build-id %s)",
            version.deployment_name,
            version.build_id,
            version.deployment_name,
            version.build_id,
        )
    encrypted = ", payloads encrypted" if settings.data_converter and settings.data_converter.payload_codec else ""
    log.info("worker polling task queue %s on %s%s", task_queue, settings.describe(), encrypted)
    running = asyncio.create_task(worker.run())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if running.done():
        stopping.cancel()
        running.result()  # the worker stopped by itself: surface why
        return 1
    log.info("shutting down: finishing running activities (up to %s s)", args.shutdown_grace)
    try:
        await asyncio.wait_for(worker.shutdown(), timeout=args.shutdown_grace + 10)
    except TimeoutError:
        log.warning("shutdown did not finish (is Temporal reachable?); exiting anyway, Temporal retries the work")
        return 1
    return 0


async def run_replay_check(args: argparse.Namespace) -> int:
    """``--replay-check``: replay history files and/or the namespace's runs with this code; 0 when all replay."""
    try:
        since = parse_duration(args.since) if args.since else None
    except ValueError as exc:
        print(f"error: --since: {exc}", file=sys.stderr)
        return 2
    from_namespace = args.histories is None or args.since is not None or args.query is not None
    try:
        settings = TemporalSettings.from_env().override(address=args.address, namespace=args.namespace)
        client = await settings.connect() if from_namespace else None
    except TemporalConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    assert settings.data_converter is not None  # from_env always sets the (possibly encrypting) converter
    replayer = build_replayer(settings.data_converter)
    try:
        return await replay_check.check(
            replayer,
            client=client,
            workflow_types=[defn_name(workflow_class) for workflow_class in WORKFLOWS],
            since=since,
            query=args.query,
            histories_dir=Path(args.histories) if args.histories else None,
        )
    except replay_check.ReplayCheckError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def defn_name(workflow_class: type[Any]) -> str:
    """The workflow type name a class is registered under."""
    definition = getattr(workflow_class, "__temporal_workflow_definition")
    return str(definition.name)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description="Run the cutover worker.")
    parser.add_argument("--address", help="Temporal frontend host:port (env TEMPORAL_ADDRESS)")
    parser.add_argument("--namespace", help="Temporal namespace (env TEMPORAL_NAMESPACE)")
    parser.add_argument("--task-queue", help="task queue (env CUTOVER_TASK_QUEUE, default cutover)")
    parser.add_argument(
        "--policy", help=f"the worker policy file (env {POLICY_VARIABLE}); 'dev': loopback destinations only"
    )
    parser.add_argument("--metrics", help="serve SDK metrics for Prometheus on host:port, e.g. 0.0.0.0:9464")
    parser.add_argument("--register-search-attributes", action="store_true", help="create missing ones")
    parser.add_argument("--max-concurrent-activities", type=int, default=200)
    parser.add_argument(
        "--shutdown-grace", type=float, default=10.0, help="seconds running activities get to finish on SIGTERM"
    )
    parser.add_argument("--log-level", default=os.environ.get("CUTOVER_LOG_LEVEL", "info"))
    parser.add_argument("--cloud-logging", choices=["auto", "on", "off"], default="auto")
    versioning = parser.add_argument_group("Worker Versioning (docs/operations.md): both, or neither")
    versioning.add_argument(
        "--deployment-name", default=os.environ.get(DEPLOYMENT_VARIABLE), help=f"env {DEPLOYMENT_VARIABLE}"
    )
    versioning.add_argument("--build-id", default=os.environ.get(BUILD_ID_VARIABLE), help=f"env {BUILD_ID_VARIABLE}")
    parser.add_argument(
        "--otel", action="store_true", help=f"OpenTelemetry tracing if installed (env {OTEL_VARIABLE}=1)"
    )
    replay = parser.add_argument_group("replay check (before a deploy): replay runs with this code, then exit")
    replay.add_argument("--replay-check", action="store_true", help="exit 1 if any run would fail to replay")
    replay.add_argument("--since", help="runs started within this long, and every open run (default 7d)")
    replay.add_argument("--histories", metavar="DIR", help="history files (temporal workflow show -o json)")
    replay.add_argument("--query", help="a visibility query narrowing the runs, e.g. \"CutoverRecord='api.x.'\"")
    args = parser.parse_args(argv)
    setup_logging(args.log_level, args.cloud_logging)
    if args.replay_check:
        return asyncio.run(run_replay_check(args))
    return asyncio.run(serve(args))


def exit_now(code: int) -> None:
    """Exit without interpreter teardown, after flushing output.

    The Temporal SDK's native runtime can abort the interpreter during teardown
    (temporalio/sdk-python#300); the work is done by then, so skip the teardown.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)


if __name__ == "__main__":
    exit_now(main())
