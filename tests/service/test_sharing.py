"""Two studies on one simulator endpoint with a requests-per-minute limit share it fairly: each
gets about half while both are busy, and the other gets the whole rate when one is paused or
done."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from tests.service.helpers import Service, calls, running_service, simulator, study_config

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

RPM = 2400.0  # 40 calls per second on the endpoint
WINDOW_S = 1.5


async def rates(service: Service, *study_ids: str) -> list[float]:
    """Calls per second of each study over one window."""
    before = [calls(await service.snapshot(study_id)) for study_id in study_ids]
    await anyio.sleep(WINDOW_S)
    after = [calls(await service.snapshot(study_id)) for study_id in study_ids]
    return [(b - a) / WINDOW_S for a, b in zip(before, after, strict=True)]


async def test_two_studies_share_one_endpoint_limit_fairly(tmp_path: Path) -> None:
    async with (
        simulator() as base_url,
        running_service(
            tmp_path,
            operator={
                "endpoints": {"sim": {"base_url": base_url, "rpm": RPM, "models": ["sim-1"]}}
            },
        ) as service,
    ):
        # different concurrency: the share must not follow the number of workers
        first = await service.create(study_config(concurrency=12))
        second = await service.create(study_config(concurrency=3, seed=1))
        for study_id in (first, second):
            await service.wait_for(study_id, lambda s: calls(s) >= 10)
        (endpoint,) = service.manager.endpoints.endpoints.values()
        assert len(endpoint.members) == 2
        rate_first, rate_second = await rates(service, first, second)
        total = rate_first + rate_second
        assert total == pytest.approx(RPM / 60, rel=0.2)  # the limit holds, and is used
        assert rate_first / total == pytest.approx(0.5, abs=0.1)

        status, _ = await service.call("PATCH", f"/v1/studies/{first}", {"paused": True})
        assert status == 200
        # the calls it had queued at the limiter come back unsent; those already sent land
        await service.wait_for(first, lambda s: s["throughput"]["in_flight"] == 0)
        rate_first, rate_second = await rates(service, first, second)
        assert rate_first == 0
        assert rate_second == pytest.approx(RPM / 60, rel=0.2)  # the whole rate

        status, _ = await service.call("PATCH", f"/v1/studies/{first}", {"paused": False})
        await anyio.sleep(0.3)
        rate_first, rate_second = await rates(service, first, second)
        assert rate_first / (rate_first + rate_second) == pytest.approx(0.5, abs=0.1)

        status, _ = await service.call("DELETE", f"/v1/studies/{first}")
        assert status == 200
        assert len(endpoint.members) == 1  # a finished study leaves the endpoint
        (rate_second,) = await rates(service, second)
        assert rate_second == pytest.approx(RPM / 60, rel=0.2)
