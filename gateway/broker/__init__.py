"""Pub/sub between gateway nodes: the `Broker` protocol and envelopes."""

from gateway.broker.base import Broker, Envelope, EnvelopeHandler, conv_channel, tenant_channel

__all__ = ["Broker", "Envelope", "EnvelopeHandler", "conv_channel", "tenant_channel"]
