"""asyncio building blocks: single-flight batching, periodic tasks, owned background tasks, a bounded LRU."""
