"""How many idle driver sockets one ASGI process holds (10,000 by default), and the memory each one costs."""

import asyncio
import json
import os
import resource
import time
import uuid
from typing import Any

from websockets.asyncio.client import connect

from bench.harness import prepare_database, rss_kib, server, write_result

SOCKETS = int(os.environ.get("BENCH_SOCKETS", "10000"))
FILES_OVERHEAD = 1000  # database and Redis connections, the interpreter's own files


def seed() -> list[str]:
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    from dispatch.models import Driver

    User = get_user_model()
    users = User.objects.bulk_create([User(username=f"idle-{i}") for i in range(SOCKETS)])
    Driver.objects.bulk_create([Driver(user=u, name=f"Idle {i}", phone=f"+4{i:07d}") for i, u in enumerate(users)])
    return [t.key for t in Token.objects.bulk_create([Token(user=u, key=uuid.uuid4().hex) for u in users])]


async def hold(base: str, tokens: list[str], pid: int) -> dict[str, Any]:
    url = base.replace("http://", "ws://") + "/ws/driver/"
    errors = 0
    sockets = []
    semaphore = asyncio.Semaphore(200)  # a steady ramp, as phones come online

    async def one(token: str) -> None:
        nonlocal errors
        async with semaphore:
            try:
                ws = await connect(url, additional_headers={"Authorization": f"Token {token}"}, compression=None, ping_interval=None, open_timeout=120)
                await ws.send(json.dumps({"type": "heartbeat", "id": "ready"}))
                while json.loads(await ws.recv()).get("id") != "ready":
                    pass
                sockets.append(ws)
            except Exception:
                errors += 1

    await asyncio.sleep(1)
    before = rss_kib(pid)
    started = time.perf_counter()
    await asyncio.gather(*(one(t) for t in tokens))
    ramp_s = time.perf_counter() - started
    await asyncio.sleep(3)  # let the server settle
    after = rss_kib(pid)
    for ws in sockets:
        await ws.close()
    return {"sockets": len(sockets), "errors": errors, "rss_before_kib": before, "rss_after_kib": after, "ramp_s": ramp_s}


def run() -> dict[str, Any]:
    # This process holds one end of every socket and the server (which inherits the limit) the other.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < SOCKETS + FILES_OVERHEAD:
        raise SystemExit(f"idle sockets: {SOCKETS} sockets need `ulimit -n` of at least {SOCKETS + FILES_OVERHEAD}; the hard limit here is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (65536 if hard == resource.RLIM_INFINITY else min(hard, 65536), hard))
    prepare_database()
    tokens = seed()
    with server() as (base, pid):
        held = asyncio.run(hold(base, tokens, pid))
    per_socket = (held["rss_after_kib"] - held["rss_before_kib"]) / max(1, held["sockets"])
    report = {
        "benchmark": f"idle driver sockets held by one uvicorn process (websockets-sansio, per-message deflate off), {SOCKETS} tried",
        "sockets": {**held, "kib_per_socket": per_socket},
    }
    write_result("idle_sockets", report)
    print(f"idle sockets: one ASGI process, {SOCKETS} authenticated driver sockets opened")
    print(
        f"  held {held['sockets']} with {held['errors']} errors in {held['ramp_s']:.1f} s; RSS {held['rss_before_kib'] / 1024:.0f} -> {held['rss_after_kib'] / 1024:.0f} MiB; {per_socket:.1f} KiB per socket"
    )
    return report
