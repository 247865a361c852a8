#!/usr/bin/env python3
"""Write the frames benches/vhost_bench.sh replays for the VXLAN scenarios, as a pcap file.

  vxlan_frames.py --mode encap|decap --len N --flows F [--vni V] [--outer-dst-mac M]
                  [--outer-src-mac M] OUT.pcap

One frame per flow.  The inner frame (what the container side sends or receives) is N bytes
(without FCS): Ethernet, IPv4 10.254.0.1 -> 10.253.0.0 + i, UDP 1024 -> 1024, as testpmd's
flowgen builds them.  encap: the inner frames as they are.  decap: each inner frame wrapped as
the remote VTEP 172.31.0.2 sends it to 172.31.0.1 (Ethernet, IPv4, UDP to 4789 with a source
port from the flow, VXLAN with the VNI), N + 50 bytes.  The standard library only.
"""
import argparse
import struct
import sys


def mac(text):
    b = bytes(int(x, 16) for x in text.split(":"))
    if len(b) != 6:
        raise argparse.ArgumentTypeError(f"not a MAC address: {text}")
    return b


def ip_checksum(header):
    s = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def ipv4(src, dst, proto, payload_len):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + payload_len, 0, 0, 64, proto, 0,
                    bytes(src), bytes(dst))
    return h[:10] + struct.pack("!H", ip_checksum(h)) + h[12:]


def inner_frame(i, length):
    dst = (10 << 24) + (253 << 16) + i
    udp_len = length - 14 - 20
    eth = mac("02:00:00:00:00:b0") + mac("02:00:00:00:00:a0") + b"\x08\x00"
    ip = ipv4([10, 254, 0, 1], list(struct.pack("!I", dst & 0xFFFFFFFF)), 17, udp_len)
    udp = struct.pack("!HHHH", 1024, 1024, udp_len, 0)
    return eth + ip + udp + bytes(udp_len - 8)


def vxlan_frame(inner, i, vni, dst_mac, src_mac):
    udp_len = 8 + 8 + len(inner)
    eth = dst_mac + src_mac + b"\x08\x00"
    ip = ipv4([172, 31, 0, 2], [172, 31, 0, 1], 17, udp_len)
    udp = struct.pack("!HHHH", 49152 + (i * 7919) % 16384, 4789, udp_len, 0)
    vx = struct.pack("!II", 0x08000000, vni << 8)
    return eth + ip + udp + vx + inner


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=["encap", "decap"], required=True)
    ap.add_argument("--len", type=int, default=60, help="inner frame bytes without FCS (>= 60)")
    ap.add_argument("--flows", type=int, default=1)
    ap.add_argument("--vni", type=int, default=100)
    ap.add_argument("--outer-dst-mac", type=mac, default=mac("02:00:00:00:00:01"))
    ap.add_argument("--outer-src-mac", type=mac, default=mac("02:00:00:00:00:02"))
    ap.add_argument("out")
    a = ap.parse_args()
    if not 60 <= a.len <= 9000 or not 1 <= a.flows <= 1 << 20 or not 0 <= a.vni < 1 << 24:
        sys.exit("vxlan_frames.py: --len 60..9000, --flows 1..1048576, --vni 0..16777215")
    with open(a.out, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))  # pcap, Ethernet
        for i in range(a.flows):
            frame = inner_frame(i, a.len)
            if a.mode == "decap":
                frame = vxlan_frame(frame, i, a.vni, a.outer_dst_mac, a.outer_src_mac)
            f.write(struct.pack("<IIII", 0, i, len(frame), len(frame)) + frame)


if __name__ == "__main__":
    main()
