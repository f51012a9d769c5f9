"""The Redis channel layer, with a connection pool that waits instead of failing, and a
batched group send.

redis-py's asyncio ConnectionPool raises "Too many connections" the moment its cap is
reached, so a burst of reconnecting drivers turned into errors. A BlockingConnectionPool
makes the burst queue for a free connection (up to `pool_timeout` seconds) instead.

`group_send_many` delivers many (group, message) pairs in two round trips per Redis host,
where channels_redis's `group_send` takes four per message: a sweep that withdraws a hundred
offers, or one after-commit burst, costs two trips instead of four hundred. It writes the
same keys in the same format as `group_send` (the receiving side is channels_redis's own).
"""

import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from channels.layers import BaseChannelLayer
from channels_redis.core import RedisChannelLayer as BaseRedisChannelLayer
from redis.asyncio import BlockingConnectionPool

GroupMessage = tuple[str, dict[str, Any]]

# KEYS: channel keys (one per message, repeated when a key gets several).
# ARGV: expiry, the score below which messages have expired, then per key: score, message,
# capacity. A key at capacity drops the message, as group_send does.
_SEND_MANY_SCRIPT = """
local expiry = ARGV[1]
local expired_before = ARGV[2]
local over_capacity = 0
for i = 1, #KEYS do
    local at = 3 + (i - 1) * 3
    redis.call('ZREMRANGEBYSCORE', KEYS[i], 0, expired_before)
    if redis.call('ZCOUNT', KEYS[i], '-inf', '+inf') < tonumber(ARGV[at + 2]) then
        redis.call('ZADD', KEYS[i], ARGV[at], ARGV[at + 1])
        redis.call('EXPIRE', KEYS[i], expiry)
    else
        over_capacity = over_capacity + 1
    end
end
return over_capacity
"""

# Messages sent in one batch get scores this far apart, so that a receiver pops them in the
# order they were sent (equal scores would pop in the order of their random bytes). A power of
# two, a few units in the last place of a current Unix time, so each step is exact.
_SCORE_STEP = 2.0**-20


class RedisChannelLayer(BaseRedisChannelLayer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._last_score = 0.0

    def create_pool(self, index: int) -> Any:
        host = dict(self.hosts[index])
        address = host.pop("address")
        timeout = host.pop("pool_timeout", 10)
        return BlockingConnectionPool.from_url(address, timeout=timeout, **host)

    def _next_score(self, now: float) -> float:
        self._last_score = max(now, self._last_score + _SCORE_STEP)
        return self._last_score

    async def group_send_many(self, messages: Sequence[GroupMessage]) -> int:
        """Send each message to its group, in order; returns how many deliveries were dropped
        because a channel was at capacity (as `group_send`, which only logs them)."""
        if not messages:
            return 0
        members = await self._group_members([group for group, _ in messages])
        deliveries: dict[int, list[tuple[bytes, Any, int]]] = defaultdict(list)
        for group, message in messages:
            keys_by_index, message_by_key, capacity_by_key = self._map_channel_keys_to_connection(members[group], message)
            for index, keys in keys_by_index.items():
                deliveries[index].extend((key, message_by_key[key], capacity_by_key[key]) for key in keys)
        dropped = 0
        for index, entries in deliveries.items():
            now = time.time()
            args: list[Any] = [int(self.expiry), int(now) - int(self.expiry)]
            for _, payload, capacity in entries:
                args += [self._next_score(now), payload, capacity]
            keys = [key for key, _, _ in entries]
            dropped += int(await self.connection(index).eval(_SEND_MANY_SCRIPT, len(keys), *keys, *args))
        return dropped

    async def _group_members(self, groups: list[str]) -> dict[str, list[str]]:
        """The channels in each group (expired memberships dropped first), one pipeline per host."""
        by_index: dict[int, list[str]] = defaultdict(list)
        for group in dict.fromkeys(groups):
            by_index[self.consistent_hash(group)].append(group)
        members: dict[str, list[str]] = {}
        expired_before = int(time.time()) - self.group_expiry
        for index, index_groups in by_index.items():
            pipe = self.connection(index).pipeline(transaction=False)
            for group in index_groups:
                key = self._group_key(group)
                pipe.zremrangebyscore(key, min=0, max=expired_before)
                pipe.zrange(key, 0, -1)
            results = await pipe.execute()
            for group, names in zip(index_groups, results[1::2], strict=True):
                members[group] = [name.decode("utf8") for name in names]
        return members


async def group_send_many(layer: BaseChannelLayer, messages: Sequence[GroupMessage]) -> None:
    """Each message to its group, in order: batched on the Redis layer, one by one on others
    (the embedded default's in-memory layer)."""
    if isinstance(layer, RedisChannelLayer):
        await layer.group_send_many(messages)
        return
    for group, message in messages:
        await layer.group_send(group, message)
