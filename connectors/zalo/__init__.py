"""Zalo Official Account connector (webhooks in, OA v3 customer-service messages out)."""

from connectors.zalo.config import ZaloAccount, ZaloSettings, ZaloTokens
from connectors.zalo.connector import PersistTokens, ZaloConnector
from connectors.zalo.signature import SIGNATURE_HEADER, compute_mac, signature_header

__all__ = [
    "SIGNATURE_HEADER",
    "PersistTokens",
    "ZaloAccount",
    "ZaloConnector",
    "ZaloSettings",
    "ZaloTokens",
    "compute_mac",
    "signature_header",
]
