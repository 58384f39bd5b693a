"""External thread ids of Facebook conversations.

- Messenger: ``"<page_id>:<psid>"`` — one conversation per (Page, person).
- Page comments: ``"<page_id>:comment:<top_level_comment_id>"`` — one conversation per top-level comment and
  its reply chain (a post gets many commenters; each commenter's thread is its own conversation, and agent
  replies are posted under that top-level comment).
"""

from __future__ import annotations

from dataclasses import dataclass

_COMMENT = "comment"


@dataclass(frozen=True, slots=True)
class MessengerThread:
    page_id: str
    psid: str

    def encode(self) -> str:
        return f"{self.page_id}:{self.psid}"


@dataclass(frozen=True, slots=True)
class CommentThread:
    page_id: str
    comment_id: str  # the top-level comment the conversation hangs off

    def encode(self) -> str:
        return f"{self.page_id}:{_COMMENT}:{self.comment_id}"


Thread = MessengerThread | CommentThread


def decode_thread(external_thread_id: str) -> Thread:
    """Inverse of `encode`; raises ValueError on anything else."""
    parts = external_thread_id.split(":")
    if len(parts) == 2 and all(parts):
        return MessengerThread(parts[0], parts[1])
    if len(parts) == 3 and parts[1] == _COMMENT and parts[0] and parts[2]:
        return CommentThread(parts[0], parts[2])
    raise ValueError(f"not a Facebook thread id: {external_thread_id!r}")
