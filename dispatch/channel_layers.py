"""The Redis channel layer, with a connection pool that waits instead of failing.

redis-py's asyncio ConnectionPool raises "Too many connections" the moment its cap is
reached, so a burst of reconnecting drivers turned into errors. A BlockingConnectionPool
makes the burst queue for a free connection (up to `pool_timeout` seconds) instead.
"""

from typing import Any

from channels_redis.core import RedisChannelLayer as BaseRedisChannelLayer
from redis.asyncio import BlockingConnectionPool


class RedisChannelLayer(BaseRedisChannelLayer):
    def create_pool(self, index: int) -> Any:
        host = dict(self.hosts[index])
        address = host.pop("address")
        timeout = host.pop("pool_timeout", 10)
        return BlockingConnectionPool.from_url(address, timeout=timeout, **host)
