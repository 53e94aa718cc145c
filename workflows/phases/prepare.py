"""Preparing the flip: point Kong at the alias (alias strategy), then lower the record's TTL.

Each change registers its undo before it runs. The TTL wait is for the *old* TTL as observed on the
nameservers: until it has passed, resolvers may still hold the record with its long TTL.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models.dns import DnsSnapshot, RRset, describe_rrsets
    from models.kong import KongInspection, RepointInput, RestoreServiceInput, kong_host
    from workflows import planning
    from workflows.activity_refs import KONG_AWAIT_DATA_PLANES, KONG_REPOINT_SERVICE, KONG_RESTORE_SERVICE
    from workflows.dns_steps import wrote_nothing
    from workflows.errors import StepFailed
    from workflows.kit import Kit
    from workflows.phases.verify import Verified
    from workflows.saga import KONG_SYNC_TIMEOUT, data_plane_sync_input
    from workflows.state import Undo
    from workflows.status import set_phase
    from workflows.steps import CHANGE_RETRY


async def repoint(kit: Kit, verified: Verified) -> tuple[RRset, ...]:
    """Create the alias if needed and point Kong's Service at it; returns the record's rrsets."""
    run = kit.run
    plan = run.plan
    reality, kong = verified.reality, verified.kong
    set_phase(run, "repointing", f"Pointing Kong at the alias {plan.dns.record}.")
    current = reality.record_rrsets
    if not reality.alias_exists:
        change = planning.create_alias_change(plan, reality.old_name)
        undo = kit.saga.register_dns_undo(
            "delete-alias",
            planning.undo_of(change, f"delete the alias {plan.dns.record} cutover created"),
            f"the alias {plan.dns.record} exists (CNAME {reality.old_name})",
        )
        current = await kit.dns.apply_and_prove(change, f"Create alias {plan.dns.record} -> {reality.old_name}", undo)
        # A resolver that answered NXDOMAIN for the alias before it existed may keep that answer for
        # the zone's negative TTL (RFC 2308): Kong must not be pointed at it before that runs out.
        await kit.steps.wait(*planning.negative_ttl_wait(plan, verified.snapshot))
    if reality.repoint_needed:
        alias = kong_host(plan.dns.record)
        undo = kit.saga.register(
            Undo(
                id="restore-kong-service",
                description=f"Kong Service {plan.kong.service}: host back to {kong.service.host}",
                activity=KONG_RESTORE_SERVICE,
                argument=RestoreServiceInput(kong=plan.kong, original=kong.service, repointed_host=alias),
                left_changed=f"Kong Service {plan.kong.service} has host {alias} (was {kong.service.host})",
                manual=f"PATCH {plan.kong.admin_url}/services/{plan.kong.service} host={kong.service.host}",
                target=f"Kong Service {plan.kong.service}",
                original=f"host {kong.service.host}",
                settle=True,
            )
        )
        try:
            await kit.steps.call(
                KONG_REPOINT_SERVICE,
                RepointInput(kong=plan.kong, expected=kong.service, new_host=alias),
                f"Repoint Kong Service {plan.kong.service}: {kong.service.host} -> {alias}",
                retry=CHANGE_RETRY,
                attempt_timeout=timedelta(seconds=30),
                deadline=plan.dns.retry_deadline,
            )
        except StepFailed as exc:
            wrote_nothing(undo, exc)
            raise
        await await_kong_applied(kit, kong)
    return current


async def await_kong_applied(kit: Kit, kong: KongInspection) -> None:
    """Prove the data planes run the repointed Service (hybrid), or give Kong its update interval."""
    run = kit.run
    plan = run.plan
    if not plan.kong.status_urls:
        await kit.steps.wait(*planning.kong_apply_wait(plan))
        return
    sync = await kit.steps.call(
        KONG_AWAIT_DATA_PLANES,
        data_plane_sync_input(kit.dns, kong.config_hashes),
        f"Wait for {len(plan.kong.status_urls)} data plane(s) to apply the repointed Service",
        attempt_timeout=KONG_SYNC_TIMEOUT + timedelta(seconds=30),
        heartbeat=timedelta(seconds=30),
        abortable=True,
    )
    if not sync.in_sync:
        raise StepFailed("data planes did not apply the repointed Service: " + "; ".join(sync.lagging))
    run.repointed_hashes = dict(sync.hashes)


async def lower_ttl(kit: Kit, current: tuple[RRset, ...], snapshot: DnsSnapshot) -> tuple[RRset, ...]:
    """Lower the record's TTL to ``cutover_ttl`` and wait out the old TTL; returns the new rrsets."""
    run = kit.run
    plan = run.plan
    set_phase(run, "lowering-ttl", f"Lowering the TTL of {plan.dns.record} to {plan.dns.cutover_ttl} s.")
    change = planning.lower_ttl_change(plan, current)
    if change is None:
        run.warnings.append(f"{plan.dns.record} already has a TTL of at most {plan.dns.cutover_ttl} s")
        return current
    undo = kit.saga.register_dns_undo(
        "restore-ttl",
        planning.undo_of(change, f"restore the TTL of {plan.dns.record}"),
        f"{plan.dns.record} has TTL {plan.dns.cutover_ttl} (was {describe_rrsets(change.expected)})",
    )
    lowered = await kit.dns.apply_and_prove(change, f"Lower TTL of {plan.dns.record} to {plan.dns.cutover_ttl} s", undo)
    await kit.steps.wait(*planning.old_ttl_wait(plan, snapshot))
    return lowered
