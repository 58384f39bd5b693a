"""Operating the process: metrics, logs, event-loop stall reports, GC tuning, the event loop, graceful drain."""
