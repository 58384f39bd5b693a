"""Rating use cases: a visitor rates its resolved conversation, agents read the ratings.

Contract: only the conversation's own visitor rates it, only while it is resolved, once
per resolution (the conversation's `last_seq` when rated names the resolution: after a
new message reopened it and it was resolved again it can be rated again). The score is an
integer 1-5, the comment optional (at most `MAX_COMMENT` characters, blank means none).
A stored rating is announced as `conversation:rated` to the conversation's watchers and
the tenant's agents, and counted (`submitted`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from gateway.chat.principals import Principal, VisitorPrincipal
from gateway.chat.service import ChatService
from gateway.core.domain import ConversationStatus
from gateway.core.errors import Code, GatewayError
from gateway.core.validation import opt_str, req_int
from gateway.ratings.store import Rating, RatingRepository

MAX_COMMENT = 1000
EVENT = "conversation:rated"


class RatingError(GatewayError):
    """A rating refused for the conversation's state (`conflict`, `details.reason`)."""

    reason = ""

    def __init__(self, message: str) -> None:
        super().__init__(Code.CONFLICT, message, reason=self.reason)


class NotResolved(RatingError):
    reason = "not_resolved"

    def __init__(self) -> None:
        super().__init__("only a resolved conversation can be rated")


class AlreadyRated(RatingError):
    reason = "already_rated"

    def __init__(self) -> None:
        super().__init__("this resolution of the conversation is already rated")


def rating_dict(r: Rating) -> dict[str, Any]:
    return {"conversation_id": r.conversation_id, "seq": r.seq, "score": r.score, "comment": r.comment,
            "agent_id": r.agent_id, "created_at": r.created_at}


def parse_rating(p: Mapping[str, Any]) -> tuple[int, str | None]:
    """(score, comment) of a rating payload; `bad_request` naming the field otherwise."""
    score = req_int(p, "score", lo=1, hi=5)
    comment = opt_str(p, "comment", max_len=MAX_COMMENT)
    return score, (comment.strip() or None) if comment else None


class Ratings:
    def __init__(self, repo: RatingRepository, chat: ChatService, clock: Callable[[], float]) -> None:
        self.repo = repo
        self.chat = chat
        self.clock = clock
        self.submitted = 0  # ratings stored by this process (izh_ratings_submitted_total)

    async def rate(self, p: VisitorPrincipal, conversation_id: str, score: int, comment: str | None) -> Rating:
        conv = await self.chat.conversation_for(p, conversation_id)
        if conv.status != ConversationStatus.RESOLVED:
            raise NotResolved()
        rating = Rating(tenant_id=p.tenant_id, conversation_id=conv.id, seq=conv.last_seq, contact_id=conv.contact_id,
                        agent_id=conv.assignee_id, score=score, comment=comment, created_at=self.clock())
        if not await self.repo.add(rating):
            raise AlreadyRated()
        self.submitted += 1
        await self.chat.publish_event(conv, EVENT, rating_dict(rating), to_tenant=True)
        return rating

    async def of_conversation(self, p: Principal, conversation_id: str) -> list[Rating]:
        conv = await self.chat.conversation_for(p, conversation_id)
        return await self.repo.for_conversation(p.tenant_id, conv.id)

    async def recent(self, p: Principal, limit: int) -> list[Rating]:
        return await self.repo.recent(p.tenant_id, limit)
