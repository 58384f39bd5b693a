"""The demo shop page (demo mode only): a fake Vietnamese shop with the widget embedded."""

from __future__ import annotations

from html import escape

PRODUCTS = (
    ("Áo dài lụa tơ tằm", "1.250.000 ₫", "#c0392b"),
    ("Nón lá Huế", "85.000 ₫", "#d4a017"),
    ("Cà phê Buôn Ma Thuột 500g", "180.000 ₫", "#6f4e37"),
    ("Nước mắm Phú Quốc 40°N", "95.000 ₫", "#b9770e"),
    ("Gốm sứ Bát Tràng", "320.000 ₫", "#2e86c1"),
    ("Trà Shan tuyết Hà Giang", "240.000 ₫", "#27ae60"),
)

# Deliberately aggressive global CSS: the widget lives in a shadow root and must not change.
_CSS = """
* { box-sizing: border-box; }
body { margin: 0; font-family: Georgia, serif; background: #fbf7f0; color: #2b2b2b; }
button { text-transform: uppercase; border: 3px dashed #c0392b; background: #ffe; }
div { line-height: 1.6; }
header { background: #8e1c1c; color: #fff; padding: 18px 32px; display: flex; align-items: center; gap: 24px; }
header h1 { margin: 0; font-size: 26px; }
header nav a { color: #ffd; margin-right: 16px; text-decoration: none; }
main { max-width: 1040px; margin: 24px auto; padding: 0 24px 120px; }
.grid { display: grid; grid-template-columns: repeat(3, 1fr); gap: 18px; }
.card { background: #fff; border-radius: 10px; padding: 14px; box-shadow: 0 1px 4px rgba(0,0,0,.12); }
.thumb { height: 120px; border-radius: 8px; }
.price { color: #8e1c1c; font-weight: bold; }
.demo-note { background: #fff8d6; border: 1px solid #e7d27a; padding: 12px 16px; border-radius: 8px;
  margin-bottom: 20px; font-family: system-ui, sans-serif; font-size: 14px; }
.demo-note code { word-break: break-all; }
"""


def demo_page(base: str, widget_key: str, agent_token: str) -> str:
    cards = "\n".join(
        f'<div class="card"><div class="thumb" style="background:{color}"></div><h3>{escape(name)}</h3>'
        f'<div class="price">{escape(price)}</div><button type="button">Thêm vào giỏ</button></div>'
        for name, price, color in PRODUCTS
    )
    console = f"{base}/console#token={escape(agent_token)}"
    return f"""<!doctype html>
<html lang="vi">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Cửa hàng Quê Việt — IZIHelp demo</title>
<style>{_CSS}</style>
</head>
<body>
<header><h1>Quê Việt</h1><nav><a href="#">Trang chủ</a><a href="#">Sản phẩm</a><a href="#">Liên hệ</a></nav></header>
<main>
<div class="demo-note"><b>Demo mode.</b> The chat button at the bottom right is the IZIMessage widget.
Answer as the demo agent in the <a id="console-link" href="{console}" target="_blank">agent console</a>
(token <code id="agent-token">{escape(agent_token)}</code>).</div>
<h2>Đặc sản Việt Nam</h2>
<div class="grid">
{cards}
</div>
</main>
<script src="{escape(base)}/widget/loader.js" data-widget-key="{escape(widget_key)}" async></script>
</body>
</html>
"""


def favicon_png(color: tuple[int, int, int] = (0x0B, 0x63, 0xCE), size: int = 32) -> bytes:
    """The gateway's icon (`/favicon.ico`): a PNG of the widget's default colour with a
    white speech dot, made here rather than shipped as a binary file."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = []
    c, r2 = (size - 1) / 2, (size / 5) ** 2
    for y in range(size):
        row = bytearray(b"\x00")
        for x in range(size):
            row += b"\xff\xff\xff" if (x - c) ** 2 + (y - c) ** 2 <= r2 else bytes(color)
        rows.append(bytes(row))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"".join(rows), 9)) + chunk(b"IEND", b""))
