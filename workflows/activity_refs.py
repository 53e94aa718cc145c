"""Typed references to every activity the workflow calls, taken from the activity methods themselves.

``ref(DnsActivities.apply)`` has the type ``ActivityRef[ApplyInput, DnsChangeResult]``, inferred from
the method's signature: mypy checks the argument and the result at every call site, and a renamed
activity or a changed input type cannot drift from the workflow. Only the name and the result type
travel at run time; the workflow still decodes results itself (see ``Steps.call``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, get_type_hints

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.campaign import CampaignActivities
    from activities.decommission import DecommissionActivities
    from activities.dns import DnsActivities
    from activities.kong import KongActivities
    from activities.locks import LockActivities
    from activities.monitor import MonitorActivities
    from activities.notify import NotifyActivities
    from activities.policy import PolicyActivities
    from activities.readiness import ReadinessActivities

InputT = TypeVar("InputT")
ResultT = TypeVar("ResultT")


@dataclass(frozen=True)
class ActivityRef(Generic[InputT, ResultT]):
    """An activity's registered name and its result type, typed by its input and result."""

    name: str
    result_type: type[ResultT]


def ref(method: Callable[[Any, InputT], Awaitable[ResultT]]) -> ActivityRef[InputT, ResultT]:
    """The reference of an activity method decorated with ``@activity.defn(name=...)``."""
    definition = getattr(method, "__temporal_activity_definition", None)
    if definition is None:
        raise TypeError(f"{method.__qualname__} is not an activity")
    return ActivityRef(name=definition.name, result_type=get_type_hints(method)["return"])


POLICY_CHECK = ref(PolicyActivities.check)
DNS_SNAPSHOT = ref(DnsActivities.snapshot)
DNS_APPLY = ref(DnsActivities.apply)
DNS_VERIFY_PROPAGATION = ref(DnsActivities.verify_propagation)
DNS_RESOLVE = ref(DnsActivities.resolve)
KONG_INSPECT = ref(KongActivities.inspect)
KONG_REPOINT_SERVICE = ref(KongActivities.repoint_service)
KONG_RESTORE_SERVICE = ref(KongActivities.restore_service)
KONG_AWAIT_DATA_PLANES = ref(KongActivities.await_data_planes)
READINESS_PROBE = ref(ReadinessActivities.probe)
TRAFFIC_BASELINE = ref(MonitorActivities.baseline)
TRAFFIC_MONITOR = ref(MonitorActivities.monitor)
TRAFFIC_PROVE_DRAINED = ref(MonitorActivities.prove_drained)
DECOMMISSION_PREFLIGHT = ref(DecommissionActivities.preflight)
DECOMMISSION_DELETE = ref(DecommissionActivities.delete)
DECOMMISSION_UNDO = ref(DecommissionActivities.undo)
NOTIFY = ref(NotifyActivities.notify)
LOCK_HOLDER = ref(LockActivities.lock_holder)
CAMPAIGN_READ_CUTOVERS = ref(CampaignActivities.read_cutovers)
CAMPAIGN_APPROVE_CUTOVER = ref(CampaignActivities.approve_cutover)
