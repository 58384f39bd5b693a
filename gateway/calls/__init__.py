"""IZICall: WebRTC calls through the gateway (aiortc, Opus passthrough), recorded to
age-encrypted storage (the `recording` package). `gateway.calls.feature.CallsFeature`
declares it to the core; see docs/protocol.md "Calls"."""
