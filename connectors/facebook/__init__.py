"""Facebook connector: Messenger conversations and Page comments (see docs/connectors.md, "Facebook")."""

from connectors.facebook.config import FacebookOptions, FacebookPage
from connectors.facebook.connector import FacebookConnector
from connectors.facebook.directory import ChannelDirectory, PageDirectory, StaticDirectory

__all__ = [
    "ChannelDirectory",
    "FacebookConnector",
    "FacebookOptions",
    "FacebookPage",
    "PageDirectory",
    "StaticDirectory",
]
