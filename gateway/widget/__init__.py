"""IZIMessage widget feature: widget settings, uploads (attachments), the demo page,
the agent console and the built widget assets. Wired by `install(gw)`."""
