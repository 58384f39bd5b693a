"""Files a customer mailed, opened by an agent in the console (issue 30): a real mail with an
image and a PDF reaches the gateway's SMTP listener, the files go to the object store
(SeaweedFS's S3), and the console shows the image inline and the PDF as a working link."""

from __future__ import annotations

import asyncio
import base64
import os
import re
import secrets
import smtplib
import struct
import time
import zlib
from collections.abc import AsyncIterator
from dataclasses import replace
from email.message import EmailMessage
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import expect

from connectors.email.connector import EmailConnector
from connectors.feature import CONNECTORS_KEY
from gateway.admin.demo import ensure_demo, load_demo
from gateway.core.domain import Channel
from tests.browser.conftest import Demo
from tests.browser.test_console import T, open_console
from tests.support.seaweed import S3Server
from tests.support.server import make_config, run_gateway

pytestmark = [pytest.mark.browser, pytest.mark.s3, pytest.mark.asyncio(loop_scope="module")]

PDF = b"%PDF-1.4\n% izihelp test file\n" + os.urandom(2000)


def png(width: int = 4, height: int = 3) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def mail_demo(tmp_path_factory: pytest.TempPathFactory, seaweed: S3Server) -> AsyncIterator[Demo]:
    tmp = tmp_path_factory.mktemp("console-files")
    env = {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": "0", "MASTER_KEY": base64.b64encode(secrets.token_bytes(32)).decode()}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        base = make_config(tmp)
        config = replace(base, storage=replace(base.storage, blobs=seaweed.blob_config()))
        async with run_gateway(config) as rg:
            await ensure_demo(rg.gw.store, config, now=time.time())
            info = load_demo(tmp)
            assert info is not None
            yield Demo(rg, rg.url, info["widget_key"], info["agent_token"], info["tenant_id"])


async def test_an_agent_opens_a_mailed_image_and_pdf_in_the_console(browser: Any, mail_demo: Demo) -> None:
    demo = mail_demo
    hub = demo.rg.gw.app[CONNECTORS_KEY]
    email = hub.connectors[Channel.EMAIL]
    assert isinstance(email, EmailConnector) and email.smtp_port
    await hub.ctx.channels.add(tenant_id=demo.tenant_id, kind=Channel.EMAIL, name="Shop",
                               credentials={"username": "", "password": ""},
                               settings={"address": "support@shop.test", "smtp_host": "127.0.0.1", "smtp_port": 1,
                                         "smtp_security": "none", "domain": "help.test"})
    m = EmailMessage()
    m["From"] = "Trần Thị Bích <bich@example.vn>"
    m["To"] = "support@shop.test"
    m["Subject"] = "Hoá đơn và ảnh"
    m["Message-ID"] = "<files-1@example.vn>"
    m.set_content("Gửi shop hoá đơn và ảnh sản phẩm.\n")
    image = png()
    m.add_attachment(image, maintype="image", subtype="png", filename="ảnh.png")
    m.add_attachment(PDF, maintype="application", subtype="pdf", filename="hoá đơn.pdf")

    port = email.smtp_port

    def send() -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
            s.send_message(m)

    await asyncio.to_thread(send)

    ctx = await browser.new_context(locale="en-US")
    try:
        w = await open_console(ctx, demo)
        page = w.page
        await page.get_by_role("tab", name=re.compile("All")).click()
        await page.locator("#convs button", has_text="Trần Thị Bích").click()
        img = page.locator("#messages img[data-upload]")
        await expect(img).to_have_attribute("src", re.compile(r"/api/v1/uploads/[0-9a-f]{32}\?.*sig="), timeout=T)
        await page.wait_for_function("() => { const i = document.querySelector('#messages img[data-upload]');"
                                     " return i && i.complete && i.naturalWidth === 4; }", timeout=T)
        link = page.locator("#messages a.file[data-upload]")
        await expect(link).to_contain_text("hoá đơn.pdf", timeout=T)
        await expect(link).to_have_attribute("href", re.compile(r"sig="), timeout=T)
        href = await link.get_attribute("href")
        assert href and "undefined" not in href
        r = await page.request.get(href if href.startswith("http") else f"{demo.url}{href}")
        assert r.status == 200 and await r.body() == PDF
        assert r.headers["content-disposition"].startswith("attachment")
        assert w.errors == []
    finally:
        await ctx.close()
