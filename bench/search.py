"""Search over many messages (issue 32): latency of `Search.run` (the query, its page of 20
and the snippets) on a tenant holding `--messages` messages.

    .venv/bin/python -m bench.search                       # PostgreSQL, 1,000,000 messages
    .venv/bin/python -m bench.search --sqlite --messages 200000
    .venv/bin/python -m bench.search --keep                # keep the schema / file to rerun
    .venv/bin/python -m bench.search --reuse t_search_…    # rerun the queries on a kept one

The tenant's messages are chat-like Vietnamese (with diacritics, ~70 %) and English
sentences of 3-25 words drawn from vocabularies with a Zipf-like frequency (a few words
very common, most rare), spread over 2,000 conversations of 500 contacts; a second
tenant holds 10 % as many (scoping is part of the cost). PostgreSQL loads them with COPY
with the search index dropped and builds it afterwards (timed: what migration 0013 costs
on such a table); SQLite inserts them through the FTS5 triggers. Then `--queries` queries
of 1-3 words each, drawn from the messages' own words, once with their diacritics and
once folded ("Hà Nội" / "ha noi"), one at a time: p50 / p95 / p99 milliseconds, and the
mean hits on the first page.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg

from bench.procs import PG_DSN
from gateway.core.domain import Channel
from gateway.search.fold import fold
from gateway.search.service import Search
from gateway.search.store import SearchStore
from gateway.store.postgres import PostgresStore
from gateway.store.sqlite import SqliteStore


def _words(text: str) -> list[str]:
    return text.split()


VIETNAMESE = _words(
    "xin chào anh chị em bạn tôi cảm ơn rất nhiều được không có đơn hàng giao hàng nhanh chậm hôm nay "
    "ngày mai tuần sau tháng này địa chỉ số điện thoại thanh toán chuyển khoản tiền mặt hoàn tiền đổi trả "
    "sản phẩm màu đỏ xanh vàng trắng đen kích thước lớn nhỏ vừa giá bao nhiêu khuyến mãi giảm giá mã phí "
    "vận chuyển miễn phí Hà Nội Hồ Chí Minh Đà Nẵng Hải Phòng Cần Thơ Huế Nha Trang quận huyện phường "
    "đường nhà chung cư công ty văn phòng giờ làm việc sáng chiều tối cuối tuần hỗ trợ tư vấn bảo hành "
    "sửa chữa lỗi hỏng thay thế kiểm tra xác nhận hủy đặt lại tài khoản mật khẩu đăng nhập đăng ký email "
    "tin nhắn gọi lại chờ một chút vâng dạ ạ nhé nhá ok được rồi không sao xin lỗi vui lòng gửi ảnh hóa "
    "đơn biên lai phiếu bảo hành mới cũ chính hãng nhập khẩu trong nước điện thoại máy tính bàn phím "
    "chuột tai nghe sạc cáp ốp lưng màn hình pin"
)
ENGLISH = _words(
    "hello hi thanks thank you please order delivery shipping fast slow today tomorrow next week month "
    "address phone number payment transfer cash refund return exchange product color red blue yellow "
    "white black size large small medium price how much discount code fee free office hours morning "
    "afternoon evening weekend support help warranty repair broken replace check confirm cancel account "
    "password login sign up email message call back wait moment yes no sorry send photo invoice receipt "
    "new old original imported laptop keyboard mouse headphones charger cable case screen battery "
    "tracking status arrived missing damaged wrong item store branch open closed available stock"
)


def _zipf_weights(n: int) -> list[float]:
    return [1.0 / (i + 1) ** 0.9 for i in range(n)]


class Texts:
    """Chat-like sentences, reproducible from `seed`."""

    def __init__(self, seed: int) -> None:
        self.rnd = random.Random(seed)
        self.vi = list(VIETNAMESE)
        self.en = list(ENGLISH)
        self.rnd.shuffle(self.vi)
        self.rnd.shuffle(self.en)
        self.vi_w = _zipf_weights(len(self.vi))
        self.en_w = _zipf_weights(len(self.en))

    def sentence(self) -> str:
        vi = self.rnd.random() < 0.7
        words, weights = (self.vi, self.vi_w) if vi else (self.en, self.en_w)
        n = self.rnd.randint(3, 25)
        text = " ".join(self.rnd.choices(words, weights, k=n))
        if self.rnd.random() < 0.05:
            text += f" {self.rnd.randint(100000, 999999)}"  # an order number
        return text[0].upper() + text[1:] + self.rnd.choice((".", "?", "!", ""))

    def query(self) -> str:
        """1-3 consecutive words of a sentence (as an agent would type them)."""
        words = self.sentence().rstrip(".?!").split()
        k = self.rnd.randint(1, 3)
        start = self.rnd.randrange(0, len(words) - k + 1)
        return " ".join(words[start:start + k])


def _rows(tenant: str, convs: list[str], n: int, texts: Texts, t0: float) -> Iterator[tuple[object, ...]]:
    """(id, tenant_id, conversation_id, seq, author_type, text, created_at) of `n` messages."""
    seqs = dict.fromkeys(convs, 0)
    for i in range(n):
        conv = convs[texts.rnd.randrange(len(convs))]
        seqs[conv] += 1
        author = "contact" if texts.rnd.random() < 0.55 else "agent"
        yield (f"{i:012x}{uuid.uuid4().hex[:20]}", tenant, conv, seqs[conv], author, texts.sentence(), t0 + i * 0.5)


async def _tenant(store: SqliteStore | PostgresStore, name: str, contacts: int, convs: int,
                  texts: Texts) -> tuple[str, list[str]]:
    tenant = await store.create_tenant(name=name, widget_key=uuid.uuid4().hex, identity_secret="x" * 32, now=1.0)
    first = [w for w in VIETNAMESE + ENGLISH if w[0].isupper()] or ["Lan"]
    cids = []
    for i in range(contacts):
        c = await store.create_contact(tenant_id=tenant.id, name=f"{texts.rnd.choice(first)} {i}",
                                       email=f"user{i}@example.vn", phone=f"+84 9{i:08d}", now=1.0 + i)
        cids.append(c.id)
    out = []
    for i in range(convs):
        conv = await store.create_conversation(tenant_id=tenant.id, channel=Channel.WIDGET,
                                               contact_id=cids[i % len(cids)], now=1.0)
        out.append(conv.id)
    return tenant.id, out


async def _load_postgres(store: PostgresStore, schema: str, n: int, texts: Texts) -> str:
    t0 = time.perf_counter()
    tenant, convs = await _tenant(store, "bench", 500, 2_000, texts)
    other, other_convs = await _tenant(store, "other", 50, 200, texts)
    print(f"tenants, contacts, conversations: {time.perf_counter() - t0:.1f} s", flush=True)
    conn = await asyncpg.connect(PG_DSN, server_settings={"search_path": f'"{schema}"'})
    try:
        await conn.execute("DROP INDEX messages_search_idx")
        cols = ["id", "tenant_id", "conversation_id", "seq", "author_type", "text", "created_at"]
        t0 = time.perf_counter()
        for tid, cs, count in ((tenant, convs, n), (other, other_convs, n // 10)):
            rows: list[tuple[object, ...]] = []
            for r in _rows(tid, cs, count, texts, 1.7e9):
                rows.append((*r, "[]", "none"))
                if len(rows) == 100_000:
                    await conn.copy_records_to_table("messages", records=rows,
                                                     columns=[*cols, "attachments", "delivery_state"])
                    rows = []
            await conn.copy_records_to_table("messages", records=rows,
                                             columns=[*cols, "attachments", "delivery_state"])
        await conn.execute("UPDATE conversations c SET last_seq = m.s FROM (SELECT conversation_id, max(seq) AS s"
                           " FROM messages GROUP BY conversation_id) m WHERE m.conversation_id = c.id")
        print(f"COPY {n + n // 10} messages: {time.perf_counter() - t0:.1f} s", flush=True)
        t0 = time.perf_counter()
        await conn.execute("SET maintenance_work_mem = '256MB'")
        await conn.execute("CREATE INDEX messages_search_idx ON messages USING gin"
                           " (to_tsvector('simple'::regconfig, izh_fold(text)))")
        await conn.execute("ANALYZE messages")
        await conn.execute("ANALYZE conversations")
        await conn.execute("ANALYZE contacts")
        print(f"search index built (and ANALYZE): {time.perf_counter() - t0:.1f} s", flush=True)
        size = await conn.fetchval("SELECT pg_size_pretty(pg_relation_size('messages_search_idx'))")
        table = await conn.fetchval("SELECT pg_size_pretty(pg_relation_size('messages'))")
        print(f"index {size}, table {table}", flush=True)
    finally:
        await conn.close()
    return tenant


async def _load_sqlite(store: SqliteStore, n: int, texts: Texts) -> str:
    tenant, convs = await _tenant(store, "bench", 500, 2_000, texts)
    t0 = time.perf_counter()
    batch: list[tuple[object, ...]] = []
    sql = ("INSERT INTO messages (id, tenant_id, conversation_id, seq, author_type, text, created_at, attachments,"
           " delivery_state) VALUES ($1, $2, $3, $4, $5, $6, $7, '[]', 'none')")
    for r in _rows(tenant, convs, n, texts, 1.7e9):
        batch.append(r)
        if len(batch) == 5_000:
            async with store.transaction() as conn:
                for row in batch:
                    await conn.execute(sql, *row)
            batch = []
    async with store.transaction() as conn:
        for row in batch:
            await conn.execute(sql, *row)
    print(f"insert {n} messages through the FTS5 trigger: {time.perf_counter() - t0:.1f} s", flush=True)
    return tenant


async def _queries(search: Search, tenant: str, texts: Texts, count: int) -> None:
    queries = [texts.query() for _ in range(count)]
    for label, forms in (("with diacritics", queries), ("folded", [fold(q) for q in queries])):
        await search.run(tenant, {"q": forms[0]})  # warm
        times, hits = [], []
        for q in forms:
            t0 = time.perf_counter()
            page = await search.run(tenant, {"q": q, "limit": 20})
            times.append((time.perf_counter() - t0) * 1000)
            hits.append(len(page["results"]))
        qs = statistics.quantiles(times, n=100)
        print(f"{label:16} {count} queries: p50 {qs[49]:.1f} ms  p95 {qs[94]:.1f} ms  p99 {qs[98]:.1f} ms"
              f"  max {max(times):.1f} ms  mean hits {statistics.mean(hits):.1f}", flush=True)
    contacts = [texts.rnd.choice(("nguyen", "Hà", "user12", "84 9000", "example")) for _ in range(count // 4)]
    times = []
    for q in contacts:
        t0 = time.perf_counter()
        await search.run(tenant, {"q": q, "kind": "contacts"})
        times.append((time.perf_counter() - t0) * 1000)
    qs = statistics.quantiles(times, n=100)
    print(f"{'contacts':16} {len(contacts)} queries: p50 {qs[49]:.1f} ms  p95 {qs[94]:.1f} ms", flush=True)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=400)
    ap.add_argument("--sqlite", action="store_true")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--reuse", help="a kept schema (PostgreSQL) or file (SQLite) and its tenant: NAME:TENANT")
    ap.add_argument("--seed", type=int, default=32)
    args = ap.parse_args()
    texts = Texts(args.seed)
    if args.sqlite:
        path = args.reuse.split(":")[0] if args.reuse else str(Path(tempfile.mkdtemp()) / "search.db")
        store: SqliteStore | PostgresStore = SqliteStore(path)
    else:
        schema = args.reuse.split(":")[0] if args.reuse else f"t_search_{uuid.uuid4().hex[:8]}"
        store = PostgresStore(PG_DSN, schema=schema)
    await store.open()
    await store.migrate()
    try:
        if args.reuse:
            tenant = args.reuse.split(":")[1]
        elif isinstance(store, PostgresStore):
            tenant = await _load_postgres(store, schema, args.messages, texts)
        else:
            tenant = await _load_sqlite(store, args.messages, texts)
        print(f"store: {'sqlite ' + path if args.sqlite else 'postgres ' + schema}, tenant {tenant}", flush=True)
        await _queries(Search(SearchStore(store, sqlite=args.sqlite)), tenant, texts, args.queries)
    finally:
        await store.close()
        if not args.keep and not args.reuse and not args.sqlite:
            conn = await asyncpg.connect(PG_DSN)
            await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
            await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
