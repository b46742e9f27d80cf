#!/usr/bin/env python3
"""Writes speech-20ms.pcap: the speech of sip-tester's g711a.pcap (A-law RTP in 30 ms packets)
repacketized into 20 ms packets (160 bytes of A-law each), Ethernet/IPv4/UDP framing, for
sipp's play_pcap_audio. The payload bytes are copied, not re-encoded, so the audio is the
same. Run from anywhere: ./tests/sipp/media/make-speech-pcap.py"""
import os, struct

SRC = "/usr/share/sip-tester/g711a.pcap"
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "speech-20ms.pcap")

data = open(SRC, "rb").read()
assert data[:4] == b"\xd4\xc3\xb2\xa1", "little-endian pcap"
alaw = bytearray()
off = 24
while off + 16 <= len(data):
    incl = struct.unpack("<I", data[off + 8:off + 12])[0]
    pkt = data[off + 16:off + 16 + incl]
    off += 16 + incl
    ihl = (pkt[14] & 0x0F) * 4
    rtp = pkt[14 + ihl + 8:]
    if len(rtp) > 12 and rtp[1] & 0x7F == 8:
        alaw += rtp[12:]

out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
for i in range(len(alaw) // 160):
    rtp = struct.pack("!BBHII", 0x80, 8, i & 0xFFFF, i * 160, 0x5EED0001) + alaw[i * 160:(i + 1) * 160]
    udp = struct.pack("!HHHH", 6000, 6002, 8 + len(rtp), 0) + rtp
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0,
                     bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1])) + udp
    eth = b"\x00" * 12 + b"\x08\x00" + ip
    us = i * 20000
    out += struct.pack("<IIII", us // 1000000, us % 1000000, len(eth), len(eth)) + eth
open(OUT, "wb").write(out)
print(f"{OUT}: {len(alaw) // 160} packets, {len(alaw) / 8000:.2f} s")
