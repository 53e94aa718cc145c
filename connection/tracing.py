"""Optional OpenTelemetry tracing for the worker: a span for each run, workflow task, signal, update and activity.

Off unless the operator asks (``worker.py --otel`` or ``CUTOVER_OTEL=1``): the package is optional
and spans need somewhere to go. The tracer provider is the one the process already has (set up by
``opentelemetry-instrument`` from the ``OTEL_*`` variables, or by the operator's own code); without
one, an OTLP exporter is set up when its package is installed (it reads ``OTEL_EXPORTER_OTLP_*``).
When tracing can't be on, :func:`tracing_interceptors` says why instead of failing the worker.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from typing import Any

from temporalio.worker import Interceptor

OTEL_VARIABLE = "CUTOVER_OTEL"
_OTLP_EXPORTERS = (
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
)


def tracing_requested(flag: bool, environ: Mapping[str, str] | None = None) -> bool:
    """``--otel``, or ``CUTOVER_OTEL`` set to 1/true/yes/on."""
    value = (os.environ if environ is None else environ).get(OTEL_VARIABLE, "")
    return flag or value.strip().lower() in ("1", "true", "yes", "on")


def tracing_interceptors(provider: Any = None) -> tuple[list[Interceptor], str]:
    """The worker's tracing interceptor, and a line for the log saying what was set up or why not.

    ``provider``: an OpenTelemetry SDK ``TracerProvider`` (tests pass one with an in-memory
    exporter); by default the process's global one, or a new one exporting over OTLP.
    """
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from temporalio.contrib.opentelemetry import TracingInterceptor
    except ImportError as exc:
        return [], (
            f"OpenTelemetry tracing off: {exc.name} is not installed "
            "(pip install opentelemetry-sdk opentelemetry-exporter-otlp)"
        )
    where = "the given tracer provider"
    if provider is None:
        provider = trace.get_tracer_provider()
        where = "the process's tracer provider"
        if not isinstance(provider, TracerProvider):
            provider, where = _otlp_provider(TracerProvider)
            if provider is None:
                return [], (
                    "OpenTelemetry tracing off: no tracer provider is configured and no OTLP exporter is installed: "
                    "pip install opentelemetry-exporter-otlp (it reads OTEL_EXPORTER_OTLP_ENDPOINT), or run the "
                    "worker under opentelemetry-instrument"
                )
    # Runs are started from the temporal CLI, with no client span to hang workflow spans on: create them anyway.
    interceptor = TracingInterceptor(provider.get_tracer("cutover.worker"), always_create_workflow_spans=True)
    return [interceptor], f"OpenTelemetry tracing on ({where})"


def _otlp_provider(provider_type: type[Any]) -> tuple[Any, str]:
    """A tracer provider batching spans to the first OTLP exporter installed (HTTP, then gRPC), or None."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    for module_name in _OTLP_EXPORTERS:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        service = os.environ.get("OTEL_SERVICE_NAME") or "cutover-worker"
        provider = provider_type(resource=Resource.create({"service.name": service}))
        provider.add_span_processor(BatchSpanProcessor(module.OTLPSpanExporter()))
        return provider, f"OTLP exporter {module_name.split('.')[4]}, OTEL_EXPORTER_OTLP_* settings"
    return None, ""
