#!/usr/bin/env python3
"""Writes the committed seed corpora in fuzz/seeds/<target>/ (run from the repository root:
`python3 fuzz/tools/make_seeds.py`; the images need Pillow). Seeds are small, realistic inputs:
valid ones and near-misses of each parser, so fuzzing starts from the interesting shapes."""

import io
import os
import struct
import zlib
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1] / "seeds"
NOW = 1_796_083_200  # fuzzing.rs's fixed "now"


def write(target, name, data):
    directory = ROOT / target
    directory.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    (directory / name).write_bytes(data)


def image(fmt, size=(4, 3), mode="RGB", **options):
    picture = Image.new(mode, size)
    for x in range(size[0]):
        for y in range(size[1]):
            value = (x * 40 % 256, y * 60 % 256, 128)
            picture.putpixel((x, y), value if mode == "RGB" else value + (200,) if mode == "RGBA" else (x + y) % 4)
    out = io.BytesIO()
    picture.save(out, fmt, **options)
    return out.getvalue()


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(width, height):
    """A PNG whose header claims width×height pixels over a few hundred bytes of zeros."""
    header = png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    rows = zlib.compress(b"\0" * (1 + width * 3) * 4, 9)
    return b"\x89PNG\r\n\x1a\n" + header + png_chunk(b"IDAT", rows) + png_chunk(b"IEND", b"")


def gif_bomb():
    """A GIF whose logical screen is 65535×65535."""
    return b"GIF89a" + struct.pack("<HH", 65535, 65535) + b"\x00\x00\x00" + b",\x00\x00\x00\x00\xff\xff\xff\xff\x00\x02\x02\x44\x01\x00;"


# E-mail addresses.
for index, text in enumerate([
    "ann@example.org", "  Ann.Lee+shop@Example.ORG ", "o'brien@mail.example.co.uk", "a@b.cd",
    "ann@localhost", "ann@@x.org", "a..b@x.org", "ann@-x.org", "x" * 64 + "@example.org",
    "ann@x.org\r\nBcc: eve@y.org", "ann@exämple.org", "\u212aelvin@example.org",
]):
    write("email", f"seed-{index:02}", text)

# Passwords: first line the e-mail address, the rest the password.
for index, text in enumerate([
    "ann@example.org\ncorrect horse battery staple", "\nshort", "ann@example.org\nAnn@Example.org",
    "\nPassword123", "\n日本語の秘密鍵です", "\n" + "x" * 128, "\n" + "x" * 129, "\n  spaces  around  ",
]):
    write("password", f"seed-{index:02}", text)

# Names and other checked text.
for index, text in enumerate([
    "Ann Lee", "  Blue mug ", "Line one\r\n\tLine two", "Robert'); DROP TABLE users;--", "eur", "USD",
    "0190a5a4-7c6e-7b3f-9a55-1c2d3e4f5a6b", "é" * 101, "Ann\u0000Lee", "\u200b", "bell\u0007",
]):
    write("names", f"seed-{index:02}", text)

# JSON bodies: first line the route, then the body.
bodies = {
    "register": ['{"email":"ann@example.org","password":"correct horse battery staple","name":"Ann Lee"}',
                 '{"email":"ann","password":"short","name":""}', '{"email":"a@b.cd","password":"x","name":"A","extra":1}'],
    "login": ['{"email":"ann@example.org","password":"correct horse","session_cookie":true}', '{"email":1}'],
    "refresh": ['{"refresh_token":"0190a5a47c6e7b3f9a551c2d3e4f5a6b.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}',
                '{"refresh_token":"nonsense"}'],
    "update_me": ['{"name":"Ann B. Lee"}', '{"password":"new password here","current_password":"old one"}',
                  '{"password":"new password here"}', '{}'],
    "create_product": ['{"name":"Blue mug","description":"A mug.\\nBlue.","price_minor":1250,"currency":"EUR","stock":10}',
                       '{"name":"","price_minor":-1,"currency":"EURO","stock":1000000001,"image_id":"not-a-uuid"}'],
    "update_product": ['{"price_minor":990,"currency":"usd"}', '{"image_id":null}', '{"price_minor":5}', '{}'],
    "create_order": ['{"items":[{"product_id":"0190a5a4-7c6e-7b3f-9a55-1c2d3e4f5a6b","quantity":2}]}',
                     '{"items":[{"product_id":"0190a5a4-7c6e-7b3f-9a55-1c2d3e4f5a6b","quantity":0},'
                     '{"product_id":"0190a5a4-7c6e-7b3f-9a55-1c2d3e4f5a6b","quantity":1001}]}', '{"items":[]}'],
    "events": ['{"events":[{"type":"product.viewed","timestamp":"2026-11-30T12:00:00Z","properties":{"product":"x"}}]}',
               '{"events":[{"type":"Bad Type","timestamp":"1970-01-01T00:00:00Z","properties":[1]}]}',
               '{"events":[{"type":"a","timestamp":"+262143-12-31T23:59:59Z"}]}'],
    "create_export": ['{"format":"csv"}', '{"format":"xml"}'],
}
for route, variants in bodies.items():
    for index, body in enumerate(variants):
        write("json_bodies", f"{route}-{index}", f"{route}\n{body}")

# Multipart upload bodies: first line the boundary, then the body.
def multipart(boundary, parts):
    out = b""
    for name, data, filename in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()
        if filename:
            out += b"Content-Type: application/octet-stream\r\n"
        out += b"\r\n" + data + b"\r\n"
    return boundary.encode() + b"\n" + out + f"--{boundary}--\r\n".encode()

small_png = image("PNG")
write("multipart", "png-public", multipart("XyZ", [("public", b"true", None), ("file", small_png, "a.png")]))
write("multipart", "gif-private", multipart("b0undary", [("file", image("GIF", mode="P"), "a.gif"), ("public", b"off", None)]))
write("multipart", "two-files", multipart("q", [("file", small_png, "a.png"), ("file", small_png, "b.png")]))
write("multipart", "pdf", multipart("q", [("file", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", "a.pdf")]))
write("multipart", "unknown-part", multipart("q", [("avatar", b"x", None)]))
write("multipart", "truncated", multipart("q", [("file", small_png, "a.png")])[:-30])

# Images: tiny real files of each type, and decompression bombs (headers far over any limit).
images = {
    "tiny.png": small_png,
    "tiny-alpha.png": image("PNG", mode="RGBA"),
    "tiny.jpg": image("JPEG", quality=80),
    "tiny-progressive.jpg": image("JPEG", quality=60, progressive=True),
    "tiny.gif": image("GIF", mode="P"),
    "tiny-lossy.webp": image("WEBP", quality=70),
    "tiny-lossless.webp": image("WEBP", lossless=True),
    "bomb-100000x100000.png": png_bomb(100_000, 100_000),
    "bomb-65535x65535.gif": gif_bomb(),
    "wide-2000x1.png": image("PNG", size=(2000, 1)),
}
for name, data in images.items():
    write("image_header", name, data)
    write("image_decode", name, data)

# Keyset cursors: query strings of the list routes.
for index, text in enumerate([
    "after=0190a5a4-7c6e-7b3f-9a55-1c2d3e4f5a6b&limit=20",
    "after=0190a5a4-7c6e-7b3f-9a55-1c2d3e4f5a6b&limit=5&min_price=100&max_price=5000&q=blue+mug",
    "q=caf%C3%A9%20%26%20cr%C3%A8me&limit=1", "limit=0", "limit=101&min_price=-1", "before=0190a5a4-7c6e-7b3f-9a55-1c2d3e4f5a6b",
    "after=not-a-uuid", "after={0190a5a4-7c6e-7b3f-9a55-1c2d3e4f5a6b}&limit=3", "min_price=10&max_price=5",
]):
    write("cursors", f"seed-{index:02}", text)

# Idempotency-Key values.
for index, text in enumerate([
    "9b2f0c3e-6d1a-4b8e-9f3a-2c5d7e8f9a0b", "order-2026-12-01-0001", "", "has space", "x" * 255, "x" * 256, "tab\there",
]):
    write("idempotency_key", f"seed-{index:02}", text)

# JWTs: odd first byte = structured (claims from the bytes), even = a raw token.
write("jwt", "structured-fresh", bytes([1]) + bytes(range(16)) + bytes(range(16, 32)) + b"\x01" + struct.pack("<H", 60) + struct.pack("<H", 40) + b"\x01")
write("jwt", "structured-expired", bytes([3]) + b"\xaa" * 32 + b"\x00" + struct.pack("<H", 65000) + struct.pack("<H", 7) + b"\x80")
write("jwt", "raw-none-alg", b"\x00eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiIwMTkwYTVhNC03YzZlLTdiM2YtOWE1NS0xYzJkM2U0ZjVhNmIiLCJleHAiOjk5OTk5OTk5OTl9.")
write("jwt", "raw-hs256", b"\x00eyJhbGciOiJIUzI1NiIsImtpZCI6ImZ1enotYSIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIwMTkwYTVhNC03YzZlLTdiM2YtOWE1NS0xYzJkM2U0ZjVhNmIiLCJzaWQiOiIwMTkwYTVhNC03YzZlLTdiM2YtOWE1NS0xYzJkM2U0ZjVhNmIiLCJyb2xlIjoiYWRtaW4iLCJpYXQiOjE3OTYwODMyMDAsImV4cCI6OTk5OTk5OTk5OX0.c2lnbmF0dXJl")
write("jwt", "raw-garbage", b"\x02a.b.c")

# Export links: odd first byte = structured, even = raw query string for a fixed id.
write("export_link", "structured-valid", bytes([1]) + bytes(range(16)) + struct.pack("<i", 86400) + struct.pack("<H", 10) + b"\x01" + struct.pack("<I", 1))
write("export_link", "structured-expired", bytes([1]) + bytes(range(16)) + struct.pack("<i", -60) + struct.pack("<H", 63) + b"\x20" + struct.pack("<I", 99))
write("export_link", "raw-query", bytes([0]) + bytes(16) + f"expires={NOW + 3600}&signature={'ab' * 32}".encode())
write("export_link", "raw-bad-hex", bytes([0]) + bytes(16) + b"expires=-1&signature=zz")

# client_ip: peer, trusted networks, then X-Forwarded-For lines.
def v4(address):
    return bytes([0]) + bytes(int(part) for part in address.split("."))
write("client_ip", "behind-proxy", v4("10.0.0.2") + b"\x01" + v4("10.0.0.0") + b"\x08" + b"203.0.113.7, 10.0.0.5")
write("client_ip", "spoofed-left", v4("10.0.0.2") + b"\x01" + v4("10.0.0.0") + b"\x08" + b"6.6.6.6, 203.0.113.7\n10.0.0.9")
write("client_ip", "untrusted-peer", v4("198.51.100.1") + b"\x01" + v4("10.0.0.0") + b"\x08" + b"1.2.3.4")
write("client_ip", "all-trusted", v4("10.0.0.2") + b"\x02" + v4("10.0.0.0") + b"\x08" + v4("192.168.0.0") + b"\x10" + b"10.1.1.1, 192.168.3.3")
write("client_ip", "ipv6-garbage", bytes([1]) + bytes(15) + b"\x01" + b"\x01" + bytes(15) + b"\x01" + b"\x80" + b"unknown, [2001:db8::1]:443, 2001:db8::2 ,,")

# forwarded: a byte (bit 0: the peer is a trusted proxy), then X-Forwarded-Proto, X-Forwarded-Host,
# Host and the request target, one per line.
write("forwarded", "plain-http-behind-proxy", b"\x01http\nshop.example.org\ninternal:8080\n/catalog?q=mug")
write("forwarded", "https-behind-proxy", b"\x01HTTPS\n\nshop.example.org\n/api/v1/me")
write("forwarded", "untrusted-peer-claims-https", b"\x00https\nevil.example\nshop.example.org\n/")
write("forwarded", "host-with-userinfo", b"\x01http\nevil.example@shop.example.org\nshop.example.org\n/login")
write("forwarded", "ipv6-host-and-port", b"\x01http\n[2001:db8::1]:8443\n\n/a/b")
write("forwarded", "asterisk-target", b"\x01http\n\nshop.example.org\n*")
write("forwarded", "absolute-target", b"\x01http\n\nshop.example.org\nhttp://other.example/x?y")
