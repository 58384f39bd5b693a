"""IZIMessage widget feature: widget settings, uploads (attachments), the demo page,
the agent console and the built widget assets. Declared to the core by `feature.WidgetFeature`."""
