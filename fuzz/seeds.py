#!/usr/bin/env python3
"""Writes the hand-made seeds of the packet-level fuzz targets (extract,
vxlan_decap, vhost_msg, vring_walk) into corpus/<target>/. The seeds of the
text and OpenFlow targets were made with the project's own encoders and are
committed as they are. Run from fuzz/: python3 seeds.py"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def put(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


MAC1 = bytes.fromhex("020000000001")
MAC2 = bytes.fromhex("020000000002")


def eth(t, payload, dst=MAC2, src=MAC1):
    return dst + src + struct.pack("!H", t) + payload


def ipv4(proto, payload, src=b"\x0a\x00\x00\x01", dst=b"\x0a\x00\x00\x02", frag=0x4000, opts=b"", ttl=64, tos=0):
    ihl = 5 + len(opts) // 4
    h = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, tos, 4 * ihl + len(payload), 1, frag, ttl, proto, 0, src, dst) + opts
    h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
    return h + payload


def ipv6(nh, payload, src=None, dst=None, hlim=64):
    src = src or bytes.fromhex("20010db8000000000000000000000001")
    dst = dst or bytes.fromhex("20010db8000000000000000000000002")
    return struct.pack("!IHBB", 0x60000000 | 0x12345, len(payload), nh, hlim) + src + dst + payload


def tcp(sport=1234, dport=80, flags=0x02, data=b""):
    return struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, flags, 65535, 0, 0) + data


def udp(sport=5353, dport=53, data=b"", src=None, dst=None):
    u = struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data
    if src and dst:
        ph = src + dst + struct.pack("!BBH", 0, 17, len(u)) if len(src) == 4 else src + dst + struct.pack("!IxxxB", len(u), 17)
        c = csum(ph + u) or 0xFFFF
        u = u[:6] + struct.pack("!H", c) + u[8:]
    return u


def vlan(tci, t, payload, tpid=0x8100):
    return struct.pack("!HH", tci, t) + payload


frames = {
    "tcp4": eth(0x0800, ipv4(6, tcp())),
    "udp4": eth(0x0800, ipv4(17, udp(data=b"hello"))),
    "icmp4": eth(0x0800, ipv4(1, struct.pack("!BBHHH", 8, 0, 0, 1, 1) + b"ping")),
    "ip4opts": eth(0x0800, ipv4(6, tcp(flags=0x12), opts=b"\x01\x01\x01\x00")),
    "frag4": eth(0x0800, ipv4(17, b"x" * 16, frag=0x2000)),
    "frag4later": eth(0x0800, ipv4(17, b"x" * 16, frag=0x0010)),
    "sctp4": eth(0x0800, ipv4(132, struct.pack("!HHII", 1, 2, 3, 4))),
    "vlan": eth(0x8100, vlan(0x2064, 0x0800, ipv4(6, tcp()))),
    "qinq": eth(0x88A8, vlan(0x000A, 0x8100, vlan(0x0014, 0x0800, ipv4(17, udp())))),
    "arp": eth(0x0806, struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + MAC1 + b"\x0a\x00\x00\x01" + b"\0" * 6 + b"\x0a\x00\x00\x02", dst=b"\xff" * 6),
    "rarp": eth(0x8035, struct.pack("!HHBBH", 1, 0x0800, 6, 4, 3) + MAC1 + b"\0" * 4 + MAC1 + b"\0" * 4),
    "tcp6": eth(0x86DD, ipv6(6, tcp(dport=443))),
    "udp6": eth(0x86DD, ipv6(17, udp())),
    "hbh6": eth(0x86DD, ipv6(0, bytes([17, 0, 1, 4, 0, 0, 0, 0]) + udp())),
    "frag6": eth(0x86DD, ipv6(44, bytes([17, 0, 0, 1, 0, 0, 0, 7]) + udp())),
    "ns6": eth(0x86DD, ipv6(58, struct.pack("!BBHI", 135, 0, 0, 0) + bytes.fromhex("fe800000000000000000000000000002") + b"\x01\x01" + MAC1)),
    "na6": eth(0x86DD, ipv6(58, struct.pack("!BBHI", 136, 0, 0, 0) + bytes.fromhex("fe800000000000000000000000000002") + b"\x02\x01" + MAC2)),
    "echo6": eth(0x86DD, ipv6(58, struct.pack("!BBHHH", 128, 0, 0, 1, 1))),
    "llc": MAC2 + MAC1 + struct.pack("!H", 20) + b"\x42\x42\x03" + b"\0" * 17,
    "snap": MAC2 + MAC1 + struct.pack("!H", 30) + b"\xaa\xaa\x03\x00\x00\x00\x08\x00" + ipv4(17, udp())[:22],
    "short": eth(0x0800, ipv4(6, tcp()))[:30],
}
for i, (name, f) in enumerate(frames.items()):
    put("extract", name, bytes([i + 1]) + f)

# vxlan_decap: byte 0 < 0x80 = an outer frame; >= 0x80 = push/pop round trip.
VTEP1, VTEP2 = b"\xac\x10\x00\x01", b"\xac\x10\x00\x02"
inner = frames["tcp4"]
for name, with_csum in [("v4", False), ("v4csum", True)]:
    vx = struct.pack("!II", 0x08000000, 5000 << 8) + inner
    u = udp(49152, 4789, vx, VTEP1, VTEP2) if with_csum else udp(49152, 4789, vx)
    put("vxlan_decap", name, b"\x00" + eth(0x0800, ipv4(17, u, VTEP1, VTEP2)))
s6, d6 = bytes.fromhex("fd000000000000000000000000000001"), bytes.fromhex("fd000000000000000000000000000002")
vx = struct.pack("!II", 0x08000000, 77 << 8) + frames["arp"]
put("vxlan_decap", "v6", b"\x00" + eth(0x86DD, ipv6(17, udp(40000, 4789, vx, s6, d6), s6, d6)))
put("vxlan_decap", "vlan-outer", b"\x00" + eth(0x8100, vlan(10, 0x0800, ipv4(17, udp(1, 4789, struct.pack("!II", 0x08000000, 1 << 8) + inner), VTEP1, VTEP2))))
for flags in (0, 1, 2, 4, 7):
    v6 = flags & 1
    addrs = (s6 + d6) if v6 else (VTEP1 + VTEP2)
    params = bytes([flags, 0x10, 64]) + addrs + struct.pack("!II", 4242, 0xDEADBEEF) + MAC1 + MAC2 + struct.pack("!H", 4789)
    put("vxlan_decap", "push%d" % flags, b"\x80" + params + frames["udp6" if v6 else "tcp4"])

# vhost_msg: [ctl (fd count | 0x80 for sockets)] header payload, repeated.
def vmsg(ctl, req, payload=b"", flags=1):
    return bytes([ctl]) + struct.pack("<III", req, flags, len(payload)) + payload


GET_FEATURES, SET_FEATURES, SET_OWNER, SET_MEM_TABLE = 1, 2, 3, 5
SET_VRING_NUM, SET_VRING_ADDR, SET_VRING_BASE, GET_VRING_BASE = 8, 9, 10, 11
SET_VRING_KICK, SET_VRING_CALL, GET_PF, SET_PF, GET_QNUM, SET_VRING_ENABLE = 12, 13, 15, 16, 17, 18
mem = struct.pack("<II", 1, 0) + struct.pack("<QQQQ", 0, 1 << 16, 0x7F0000000000, 0)
setup = (
    vmsg(0, SET_OWNER)
    + vmsg(0, GET_FEATURES)
    + vmsg(0, GET_PF)
    + vmsg(0, SET_PF, struct.pack("<Q", 0x1 | 0x8 | 0x10))
    + vmsg(0, SET_FEATURES, struct.pack("<Q", (1 << 32) | (1 << 15) | (1 << 28) | (1 << 30)))
    + vmsg(1, SET_MEM_TABLE, mem, flags=1 | 8)
    + vmsg(0, SET_VRING_NUM, struct.pack("<II", 1, 256))
    + vmsg(0, SET_VRING_BASE, struct.pack("<II", 1, 0))
    + vmsg(0, SET_VRING_ADDR, struct.pack("<IIQQQQ", 1, 0, 0x7F0000000000, 0x7F0000002000, 0x7F0000001000, 0))
    + vmsg(0x81, SET_VRING_KICK, struct.pack("<Q", 1))
    + vmsg(0x81, SET_VRING_CALL, struct.pack("<Q", 1))
    + vmsg(0, SET_VRING_ENABLE, struct.pack("<II", 1, 1))
    + vmsg(0, GET_VRING_BASE, struct.pack("<II", 1, 0))
)
put("vhost_msg", "setup", setup)
put("vhost_msg", "getqnum", vmsg(0, GET_QNUM) + vmsg(0, 20, struct.pack("<Q", 1500)))
put("vhost_msg", "nofd", vmsg(0, SET_VRING_KICK, struct.pack("<Q", 0x100)) + vmsg(0, 99, b"xx"))

# vring_walk: 20 control bytes, then guest memory from guest address 0
# (the descriptor table first).
def desc(addr, ln, flags=0, nxt=0):
    return struct.pack("<QIHH", addr, ln, flags, nxt)


def ctl(size_log2, bits, head, first):
    return bytes([size_log2, bits]) + struct.pack("<H", head) + first


NEXT, WRITE, INDIRECT = 1, 2, 4
table = desc(0x1000, 12, NEXT, 1) + desc(0x1100, 64, NEXT, 2) + desc(0x1200, 64)
put("vring_walk", "chain", ctl(2, 2, 0, desc(0, 0)) + table)
put("vring_walk", "chain-from", ctl(2, 0, 0, desc(0x1000, 12, NEXT, 1)) + table)
put("vring_walk", "write", ctl(2, 2, 0, desc(0, 0)) + desc(0x1000, 100, WRITE | NEXT, 1) + desc(0x1800, 100, WRITE))
ind = desc(0x0800, 48, INDIRECT).ljust(0x800, b"\0") + desc(0x1000, 10, NEXT, 1) + desc(0x1100, 10, NEXT, 2) + desc(0x1200, 10)
put("vring_walk", "indirect", ctl(3, 3, 0, desc(0, 0)) + ind)
put("vring_walk", "loop", ctl(2, 2, 0, desc(0, 0)) + desc(0x1000, 8, NEXT, 1) + desc(0x1000, 8, NEXT, 0))
put("vring_walk", "stop", ctl(2, 0x12, 0, desc(0, 0)) + table)
