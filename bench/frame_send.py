"""Sending frames to drivers from sync code (a Celery worker, a view after its commit): the old
path, `async_to_sync(layer.group_send)` per frame, against the outbox (dispatch.layer_outbox),
in the same run, rounds alternating so machine noise hits both alike.

The sender is this process's main thread, with no event loop of its own (as a Celery worker's
is); a second process holds one channel in every driver's group and counts what arrives, so
this process's CPU time is the cost of sending alone.
"""

import asyncio
import multiprocessing
import os
import statistics
import time
from typing import Any

from bench.harness import write_result

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
FRAMES_PER_ROUND = int(os.environ.get("BENCH_FRAMES", "200"))
BURST = 100  # an after-commit burst, as a sweep that withdraws 100 offers makes
DRIVERS = 50
STOP = "bench.stop"


def _django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    import django
    from django.conf import settings

    django.setup()
    # The receiver keeps up, but a burst must never meet the channel's capacity (100).
    layer: dict[str, Any] = settings.CHANNEL_LAYERS["default"]
    layer.setdefault("CONFIG", {})["capacity"] = 1_000_000


def _frame(n: int) -> dict[str, Any]:
    order = {"id": n, "code": f"B-{n}", "item_summary": "2 x pizza, 1 x salad", "pickup": {"lat": 52.5, "lon": 13.4}, "dropoff": {"lat": 52.51, "lon": 13.41}}
    return {"type": "driver.frame", "frame": {"type": "offer", "offer": {"id": n, "expires_at": "2026-11-26T00:00:30+00:00", "order": order}}}


def _receive(ready: Any, counted: Any) -> None:
    """The other process: one channel in every driver's group; counts frames until told to stop."""
    _django()
    from channels.layers import get_channel_layer

    from offers.notify import driver_group

    async def main() -> int:
        layer = get_channel_layer()
        channel = await layer.new_channel()
        for driver_id in range(DRIVERS):
            await layer.group_add(driver_group(driver_id), channel)
        await layer.group_add(STOP, channel)
        ready.set()
        count = 0
        while (await layer.receive(channel))["type"] != "bench.stop":
            count += 1
        for driver_id in range(DRIVERS):
            await layer.group_discard(driver_group(driver_id), channel)
        await layer.group_discard(STOP, channel)
        return count

    counted.put(asyncio.run(main()))


def run() -> dict[str, Any]:
    _django()
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    from dispatch import layer_outbox
    from offers.notify import driver_group

    layer = get_channel_layer()
    spawn = multiprocessing.get_context("spawn")
    ready, counted = spawn.Event(), spawn.Queue()
    receiver = spawn.Process(target=_receive, args=(ready, counted))
    receiver.start()
    assert ready.wait(60), "the receiver did not start"

    def old_one_by_one(frames: list[tuple[str, dict[str, Any]]]) -> None:
        for group, message in frames:
            async_to_sync(layer.group_send)(group, message)

    def old_burst(frames: list[tuple[str, dict[str, Any]]]) -> None:
        # what offers.notify did for driver_frames_batched: one async_to_sync, a gather inside
        for start in range(0, len(frames), BURST):

            async def send_all(chunk: list[tuple[str, dict[str, Any]]] = frames[start : start + BURST]) -> None:
                await asyncio.gather(*(layer.group_send(group, message) for group, message in chunk))

            async_to_sync(send_all)()

    def new_one_by_one_waiting(frames: list[tuple[str, dict[str, Any]]]) -> None:
        for group, message in frames:  # the caller waits for each: one round trip a frame
            layer_outbox.group_send(group, message)
            assert layer_outbox.flush(timeout_s=10)

    def new_one_by_one(frames: list[tuple[str, dict[str, Any]]]) -> None:
        for group, message in frames:  # as after-commit code sends: hand over, carry on
            layer_outbox.group_send(group, message)
        assert layer_outbox.flush(timeout_s=10)  # counted: until the last one is in Redis

    def new_burst(frames: list[tuple[str, dict[str, Any]]]) -> None:
        for start in range(0, len(frames), BURST):
            layer_outbox.group_send_all(frames[start : start + BURST])
        assert layer_outbox.flush(timeout_s=10)

    paths = {
        "old: async_to_sync per frame": old_one_by_one,
        "new: per frame, caller waits": new_one_by_one_waiting,
        "new: per frame, caller goes on": new_one_by_one,
        "old: burst of 100, one gather": old_burst,
        "new: burst of 100 handed over": new_burst,
    }
    new_one_by_one([(driver_group(0), _frame(0))])  # the sender loop and its connection exist
    old_one_by_one([(driver_group(0), _frame(0))])
    sent = 2
    wall: dict[str, list[float]] = {name: [] for name in paths}
    cpu: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(ROUNDS):
        for name, send in paths.items():
            frames = [(driver_group(n % DRIVERS), _frame(n)) for n in range(FRAMES_PER_ROUND)]
            started, started_cpu = time.perf_counter(), time.process_time()
            send(frames)
            wall[name].append((time.perf_counter() - started) / len(frames) * 1000)
            cpu[name].append((time.process_time() - started_cpu) / len(frames) * 1000)
            sent += len(frames)
    async_to_sync(layer.group_send)(STOP, {"type": STOP})
    received = counted.get(timeout=60)
    receiver.join(timeout=30)
    rows = {name: {"wall_ms_per_frame": statistics.median(wall[name]), "cpu_ms_per_frame": statistics.median(cpu[name])} for name in paths}
    old, new = rows["old: async_to_sync per frame"], rows["new: per frame, caller waits"]
    report: dict[str, Any] = {
        "benchmark": "a frame to a driver from sync code (no event loop in the thread), old path vs the outbox, medians of alternating rounds",
        "frames_per_round": FRAMES_PER_ROUND,
        "rounds": ROUNDS,
        "paths": rows,
        "frames": {"sent": sent, "received": received, "errors": sent - received},
        "ratio": {
            "cpu_old_over_new_waiting": old["cpu_ms_per_frame"] / new["cpu_ms_per_frame"],
            "wall_old_over_new_waiting": old["wall_ms_per_frame"] / new["wall_ms_per_frame"],
        },
    }
    write_result("frame_send", report)
    print(f"frame send: {FRAMES_PER_ROUND} frames x {ROUNDS} rounds per path, from a thread without an event loop")
    print(f"  {'path':<34}{'wall ms/frame':>15}{'cpu ms/frame':>14}")
    for name, row in rows.items():
        print(f"  {name:<34}{row['wall_ms_per_frame']:>15.3f}{row['cpu_ms_per_frame']:>14.3f}")
    print(f"  frames sent {sent}, received {received}")
    return report
