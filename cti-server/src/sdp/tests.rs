//! Unit tests: RFC 4566 parsing/printing and RFC 3264 offer/answer, with RFC 4317 examples
//! (host names replaced by documentation IPs), a Chrome offer, sipp's default SDP and a
//! carrier offer.

use std::net::{IpAddr, SocketAddr};

use super::*;

fn parse(s: &str) -> SessionDescription {
    match SessionDescription::parse(s) {
        Ok(sd) => sd,
        Err(e) => panic!("fixture does not parse: {e}\n{s}"),
    }
}

fn local() -> LocalMedia {
    LocalMedia {
        addr: "203.0.113.5".parse().unwrap(),
        port: 20000,
        session_id: 42,
        version: 7,
        srtp_key: [3; 30],
    }
}

fn sock(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn roundtrips(sd: &SessionDescription) {
    let text = sd.to_string();
    assert!(text.ends_with("\r\n"));
    assert!(
        !text.replace("\r\n", "").contains('\n'),
        "bare LF in {text:?}"
    );
    assert_eq!(&SessionDescription::parse(&text).unwrap(), sd, "{text}");
}

const ALL: &[Codec] = &[Codec::Pcmu, Codec::Pcma, Codec::Opus];

/// RFC 4317 §2.1 (audio and video 1), Alice's offer; IPs instead of host names.
const RFC4317_AUDIO_VIDEO: &str = "v=0\r
o=alice 2890844526 2890844526 IN IP4 192.0.2.101\r
s=\r
c=IN IP4 192.0.2.101\r
t=0 0\r
m=audio 49170 RTP/AVP 0 8 97\r
a=rtpmap:0 PCMU/8000\r
a=rtpmap:8 PCMA/8000\r
a=rtpmap:97 iLBC/8000\r
m=video 51372 RTP/AVP 31 32\r
a=rtpmap:31 H261/90000\r
a=rtpmap:32 MPV/90000\r
";

/// RFC 4317 §2.5-style DTMF offer (PCMU plus telephone-event 0-15).
const RFC4317_DTMF: &str = "v=0\r
o=alice 2890844526 2890844526 IN IP4 192.0.2.101\r
s=\r
c=IN IP4 192.0.2.101\r
t=0 0\r
m=audio 49170 RTP/AVP 0 97\r
a=rtpmap:0 PCMU/8000\r
a=rtpmap:97 telephone-event/8000\r
a=fmtp:97 0-15\r
";

/// sipp's built-in uac scenario body.
const SIPP: &str = "v=0\r
o=user1 53655765 2353687637 IN IP4 127.0.0.1\r
s=-\r
c=IN IP4 127.0.0.1\r
t=0 0\r
m=audio 6000 RTP/AVP 0\r
a=rtpmap:0 PCMU/8000\r
";

/// A European carrier: PCMA first, telephone-event, ptime, LF-only line ends.
const CARRIER: &str = "v=0
o=SBC 1721 1722 IN IP4 198.51.100.20
s=SIP Call
c=IN IP4 198.51.100.21
t=0 0
m=audio 31000 RTP/AVP 8 0 18 101
a=rtpmap:8 PCMA/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:18 G729/8000
a=fmtp:18 annexb=no
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=ptime:20
a=maxptime:40
a=sendrecv
";

/// Chrome's offer (trimmed of ssrc lines it repeats).
const CHROME: &str = "v=0\r
o=- 4611731400430051336 2 IN IP4 127.0.0.1\r
s=-\r
t=0 0\r
a=group:BUNDLE 0\r
a=extmap-allow-mixed\r
a=msid-semantic: WMS\r
m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r
c=IN IP4 0.0.0.0\r
a=rtcp:9 IN IP4 0.0.0.0\r
a=ice-ufrag:Zx3p\r
a=ice-pwd:q0VnBd8Jd1lYkLsqJd8Pq3xS\r
a=ice-options:trickle\r
a=fingerprint:sha-256 3B:5D:B6:0A:3C:6E:C1:D2:22:9C:38:0A:6F:29:EE:43:02:9B:5A:1E:7C:C5:0A:88:11:A4:B0:1C:30:B0:7D:D4\r
a=setup:actpass\r
a=mid:0\r
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r
a=sendrecv\r
a=msid:- 6f2c\r
a=rtcp-mux\r
a=rtpmap:111 opus/48000/2\r
a=rtcp-fb:111 transport-cc\r
a=fmtp:111 minptime=10;useinbandfec=1\r
a=rtpmap:63 red/48000/2\r
a=fmtp:63 111/111\r
a=rtpmap:9 G722/8000\r
a=rtpmap:0 PCMU/8000\r
a=rtpmap:8 PCMA/8000\r
a=rtpmap:13 CN/8000\r
a=rtpmap:110 telephone-event/48000\r
a=rtpmap:126 telephone-event/8000\r
a=ssrc:3735928559 cname:4TOk42mSjXCkVIa6\r
";

/// Chrome's codec list on a plain RTP leg (as a media gateway in front of it would offer).
fn chrome_plain() -> String {
    CHROME
        .replace("UDP/TLS/RTP/SAVPF", "RTP/AVPF")
        .replace("m=audio 9 ", "m=audio 40000 ")
        .replace("c=IN IP4 0.0.0.0", "c=IN IP4 192.0.2.50")
}

// --- parsing and printing -------------------------------------------------------------------

#[test]
fn fixtures_parse_and_print_back() {
    for text in [
        RFC4317_AUDIO_VIDEO,
        RFC4317_DTMF,
        SIPP,
        CARRIER,
        CHROME,
        &chrome_plain(),
    ] {
        roundtrips(&parse(text));
    }
}

#[test]
fn rfc4566_model_of_an_offer() {
    let sd = parse(CARRIER);
    assert_eq!(sd.origin.username, "SBC");
    assert_eq!(sd.origin.session_id, 1721);
    assert_eq!(sd.origin.session_version, 1722);
    assert_eq!(sd.session_name, "SIP Call");
    assert_eq!(
        sd.connection,
        Some(Connection::ip("198.51.100.21".parse().unwrap()))
    );
    let m = &sd.media[0];
    assert_eq!((m.media.as_str(), m.port), ("audio", 31000));
    assert_eq!(m.protocol, "RTP/AVP");
    assert_eq!(m.payload_types(), &[8, 0, 18, 101]);
    assert_eq!(m.rtpmap(8).unwrap().encoding, "PCMA");
    assert_eq!(m.fmtp(101), Some("0-15"));
    assert_eq!(m.fmtp(18), Some("annexb=no"));
    assert_eq!(m.ptime(), Some(20));
    assert_eq!(m.maxptime(), Some(40));
    assert_eq!(m.direction_attr(), Some(Direction::SendRecv));
}

#[test]
fn lf_only_equals_crlf() {
    let crlf = CARRIER.replace('\n', "\r\n");
    assert_eq!(parse(CARRIER), parse(&crlf));
    assert_eq!(parse(CARRIER).to_string(), crlf);
}

#[test]
fn unknown_attributes_are_kept_verbatim_in_order() {
    let sd = parse(CHROME);
    let text = sd.to_string();
    assert!(text.contains("a=msid-semantic: WMS\r\n"));
    assert!(
        text.contains("a=rtcp-fb:111 transport-cc\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n")
    );
    assert!(text.contains("a=ssrc:3735928559 cname:4TOk42mSjXCkVIa6\r\n"));
    assert_eq!(
        sd.attributes[0],
        Attribute::Other {
            name: "group".into(),
            value: Some("BUNDLE 0".into())
        }
    );
    // RFC 3605 rtcp with an address, RFC 5761 rtcp-mux.
    let m = &sd.media[0];
    assert_eq!(m.rtcp_port(), Some(9));
    assert!(m.rtcp_mux());
    assert_eq!(m.rtpmap(111).unwrap().channels, Some(2));
}

#[test]
fn attributes_in_any_order_and_session_lines_out_of_order() {
    let text = "v=0\nt=0 0\ns=-\nc=IN IP4 192.0.2.1\no=- 1 1 IN IP4 192.0.2.1\nb=AS:64\ni=info\n\
                m=audio 5000 RTP/AVP 0\na=sendonly\nb=AS:64\na=ptime:30\ni=media info\n";
    let sd = parse(text);
    assert_eq!(sd.media[0].ptime(), Some(30));
    let printed = sd.to_string();
    // Printed in RFC 4566 §5 order.
    assert!(printed.starts_with("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\ni=info\r\nc=IN IP4 192.0.2.1\r\nb=AS:64\r\nt=0 0\r\n"));
    assert!(
        printed.contains("m=audio 5000 RTP/AVP 0\r\ni=media info\r\nb=AS:64\r\na=sendonly\r\n")
    );
    roundtrips(&sd);
}

#[test]
fn ipv6_connection_and_origin() {
    let text = "v=0\no=- 1 1 IN IP6 2001:DB8::1\ns=-\nc=IN IP6 2001:db8::1\nt=0 0\nm=audio 7000 RTP/AVP 8\n";
    let sd = parse(text);
    let ip: IpAddr = "2001:db8::1".parse().unwrap();
    assert_eq!(sd.origin.address, Address::Ip(ip));
    assert!(sd.to_string().contains("c=IN IP6 2001:db8::1\r\n"));
    let (ans, n) = answer(&sd, &local(), ALL).unwrap();
    assert_eq!(n.remote, SocketAddr::new(ip, 7000));
    assert_eq!(n.codec, Codec::Pcma);

    let mut l6 = local();
    l6.addr = "2001:db8::5".parse().unwrap();
    let (ans6, _) = answer(&sd, &l6, ALL).unwrap();
    assert!(ans6.to_string().contains("c=IN IP6 2001:db8::5\r\n"));
    assert!(ans.to_string().contains("c=IN IP4 203.0.113.5\r\n"));
}

#[test]
fn multicast_and_host_name_addresses_are_kept() {
    let text = "v=0\no=- 1 1 IN IP4 host.example.com\ns=-\nc=IN IP4 224.2.1.1/127/3\nt=0 0\nm=audio 7000 RTP/AVP 0\n";
    let sd = parse(text);
    assert_eq!(
        sd.connection.as_ref().unwrap().multicast.as_deref(),
        Some("127/3")
    );
    assert!(
        matches!(&sd.origin.address, Address::Name { name, ip6: false } if name == "host.example.com")
    );
    roundtrips(&sd);
}

#[test]
fn session_vs_media_level_connection() {
    let text = "v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nc=IN IP4 192.0.2.1\nt=0 0\n\
                m=audio 5000 RTP/AVP 0\nc=IN IP4 192.0.2.2\n";
    let (_, n) = answer(&parse(text), &local(), ALL).unwrap();
    assert_eq!(n.remote, sock("192.0.2.2:5000"));

    let text = "v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nt=0 0\n\
                m=audio 5000 RTP/AVP 0\nc=IN IP4 192.0.2.2\nm=video 5002 RTP/AVP 31\n";
    assert_eq!(
        SessionDescription::parse(text),
        Err(SdpError::MissingConnection { index: 1 })
    );
}

#[test]
fn session_vs_media_level_direction() {
    let base = "v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nc=IN IP4 192.0.2.1\nt=0 0\na=sendonly\nm=audio 5000 RTP/AVP 0\n";
    let sd = parse(base);
    assert_eq!(sd.media_direction(0), Direction::SendOnly);
    assert!(is_hold(&sd));
    // Media level wins.
    let sd = parse(&format!("{base}a=sendrecv\n"));
    assert_eq!(sd.media_direction(0), Direction::SendRecv);
    assert!(!is_hold(&sd));
    let (_, n) = answer(&sd, &local(), ALL).unwrap();
    assert_eq!(n.direction, Direction::SendRecv);
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    let cases: &[(&str, SdpError)] = &[
        ("", SdpError::Empty),
        ("\r\n\n", SdpError::Empty),
        ("hello", SdpError::BadVersion { line: 1 }),
        ("v=1\n", SdpError::BadVersion { line: 1 }),
        (
            "o=- 1 1 IN IP4 1.2.3.4\nv=0\n",
            SdpError::BadVersion { line: 1 },
        ),
        ("v=0\nx\n", SdpError::BadLine { line: 2 }),
        ("v=0\nA=b\n", SdpError::BadLine { line: 2 }),
        ("v=0\ny=z\n", SdpError::Unexpected { line: 2, kind: 'y' }),
        ("v=0\ns=-\nt=0 0\n", SdpError::Missing { kind: 'o' }),
        (
            "v=0\no=- 1 1 IN IP4 1.2.3.4\nt=0 0\n",
            SdpError::Missing { kind: 's' },
        ),
        (
            "v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\n",
            SdpError::Missing { kind: 't' },
        ),
        (
            "v=0\no=- x 1 IN IP4 1.2.3.4\n",
            SdpError::Malformed {
                line: 2,
                what: "o=",
            },
        ),
        (
            "v=0\no=- 1 1 IN IP9 1.2.3.4\n",
            SdpError::Malformed {
                line: 2,
                what: "o=",
            },
        ),
        (
            "v=0\no=- 1 1 IN IP4 1.2.3.4\no=- 1 1 IN IP4 1.2.3.4\n",
            SdpError::Duplicate { line: 3, kind: 'o' },
        ),
        ("v=0\nv=0\n", SdpError::Duplicate { line: 2, kind: 'v' }),
        (
            "v=0\nc=IN IP4\n",
            SdpError::Malformed {
                line: 2,
                what: "c=",
            },
        ),
        (
            "v=0\nt=0\n",
            SdpError::Malformed {
                line: 2,
                what: "t=",
            },
        ),
    ];
    for (text, err) in cases {
        assert_eq!(
            SessionDescription::parse(text).as_ref(),
            Err(err),
            "{text:?}"
        );
    }
    let head = "v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nc=IN IP4 1.2.3.4\nt=0 0\n";
    for (media, line, what) in [
        ("m=audio abc RTP/AVP 0", 6, "m= port"),
        ("m=audio 70000 RTP/AVP 0", 6, "m= port"),
        ("m=audio -1 RTP/AVP 0", 6, "m= port"),
        ("m=audio 5000/x RTP/AVP 0", 6, "m= port count"),
        ("m=audio 5000 RTP/AVP 128", 6, "m= payload type"),
        ("m=audio 5000 RTP/AVP 0 PCMU", 6, "m= payload type"),
        ("m=audio 5000 RTP/AVP", 6, "m= format list"),
        ("m=audio 5000", 6, "m= line"),
        ("m=audio 5000 RTP/AVP 0\na=rtpmap:96 opus", 7, "a=rtpmap"),
        ("m=audio 5000 RTP/AVP 0\na=rtpmap:200 x/8000", 7, "a=rtpmap"),
    ] {
        let err = SessionDescription::parse(&format!("{head}{media}\n")).unwrap_err();
        assert_eq!(err, SdpError::Malformed { line, what }, "{media}");
    }
    // Lines only allowed at session level.
    assert_eq!(
        SessionDescription::parse(&format!("{head}m=audio 5000 RTP/AVP 0\ns=again\n")),
        Err(SdpError::Unexpected { line: 7, kind: 's' })
    );
}

#[test]
fn tolerant_values_stay_as_other_attributes() {
    let head =
        "v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nc=IN IP4 1.2.3.4\nt=0 0\nm=audio 5000 RTP/AVP 0\n";
    let sd = parse(&format!(
        "{head}a=ptime:abc\na=fmtp:x y\na=sendrecv:1\na=rtcp:x\na=\n"
    ));
    let m = &sd.media[0];
    assert_eq!(m.ptime(), None);
    assert_eq!(m.direction_attr(), None);
    assert_eq!(m.attributes.len(), 5);
    assert!(
        m.attributes
            .iter()
            .all(|a| matches!(a, Attribute::Other { .. }))
    );
    roundtrips(&sd);
    // A rejected stream without formats is seen in the wild.
    roundtrips(&parse(&format!("{head}m=video 0 RTP/AVP\n")));
    // Non-RTP format tokens.
    let sd = parse(&format!(
        "{head}m=application 5000 UDP/DTLS/SCTP webrtc-datachannel\n"
    ));
    assert_eq!(
        sd.media[1].formats,
        Formats::Other(vec!["webrtc-datachannel".into()])
    );
}

// --- offer/answer (UAS side) ----------------------------------------------------------------

#[test]
fn rfc4317_answer_picks_first_offered_and_rejects_video() {
    let offer = parse(RFC4317_AUDIO_VIDEO);
    let (ans, n) = answer(&offer, &local(), ALL).unwrap();
    assert_eq!(
        n,
        Negotiated {
            codec: Codec::Pcmu,
            pt: 0,
            dtmf_pt: None,
            remote: sock("192.0.2.101:49170"),
            direction: Direction::SendRecv,
            ptime: 20,
            rtcp_mux: false,
            srtp: None,
        }
    );
    let text = ans.to_string();
    assert_eq!(
        text,
        "v=0\r\no=- 42 7 IN IP4 203.0.113.5\r\ns=-\r\nc=IN IP4 203.0.113.5\r\nt=0 0\r\n\
         m=audio 20000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n\
         m=video 0 RTP/AVP 31 32\r\n"
    );
    roundtrips(&ans);
}

#[test]
fn rfc4317_telephone_event_keeps_offered_pt_and_events() {
    let (ans, n) = answer(&parse(RFC4317_DTMF), &local(), ALL).unwrap();
    assert_eq!((n.pt, n.dtmf_pt), (0, Some(97)));
    let m = &ans.media[0];
    assert_eq!(m.payload_types(), &[0, 97]);
    assert_eq!(m.rtpmap(97).unwrap().encoding, "telephone-event");
    assert_eq!(m.fmtp(97), Some("0-15"));
}

#[test]
fn carrier_pcma_first_wins_over_our_preference() {
    let offer = parse(CARRIER);
    let (ans, n) = answer(&offer, &local(), &[Codec::Pcmu, Codec::Pcma]).unwrap();
    assert_eq!((n.codec, n.pt, n.dtmf_pt), (Codec::Pcma, 8, Some(101)));
    assert_eq!(n.remote, sock("198.51.100.21:31000"));
    // ptime echoed.
    assert_eq!(n.ptime, 20);
    assert_eq!(ans.media[0].ptime(), Some(20));
    // prefs still filter.
    let (_, n) = answer(&offer, &local(), &[Codec::Pcmu]).unwrap();
    assert_eq!(n.codec, Codec::Pcmu);
}

#[test]
fn ptime_echo_and_default() {
    let offer = parse(&SIPP.replace(
        "a=rtpmap:0 PCMU/8000\r\n",
        "a=rtpmap:0 PCMU/8000\r\na=ptime:30\r\n",
    ));
    let (ans, n) = answer(&offer, &local(), ALL).unwrap();
    assert_eq!((n.ptime, ans.media[0].ptime()), (30, Some(30)));
    let (ans, n) = answer(&parse(SIPP), &local(), ALL).unwrap();
    assert_eq!((n.ptime, ans.media[0].ptime()), (20, None));
}

#[test]
fn sipp_default_offer() {
    let (ans, n) = answer(&parse(SIPP), &local(), ALL).unwrap();
    assert_eq!((n.codec, n.pt, n.dtmf_pt), (Codec::Pcmu, 0, None));
    assert_eq!(n.remote, sock("127.0.0.1:6000"));
    assert_eq!(ans.media.len(), 1);
    assert_eq!(ans.media[0].port, 20000);
}

#[test]
fn no_common_codec_is_488() {
    let offer = parse(
        &SIPP
            .replace("RTP/AVP 0", "RTP/AVP 18")
            .replace("0 PCMU", "18 G729"),
    );
    let err = answer(&offer, &local(), ALL).unwrap_err();
    assert_eq!(err, NegotiationError::NoCommonCodec);
    assert_eq!(err.sip_status(), 488);
    // Nothing we prefer either.
    let err = answer(&parse(CARRIER), &local(), &[Codec::Opus]).unwrap_err();
    assert_eq!(err, NegotiationError::NoCommonCodec);
}

#[test]
fn no_audio_is_an_error() {
    let offer =
        "v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nc=IN IP4 192.0.2.1\nt=0 0\nm=video 5000 RTP/AVP 31\n";
    assert_eq!(
        answer(&parse(offer), &local(), ALL),
        Err(NegotiationError::NoAudio)
    );
    let disabled =
        "v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nc=IN IP4 192.0.2.1\nt=0 0\nm=audio 0 RTP/AVP 0\n";
    assert_eq!(
        answer(&parse(disabled), &local(), ALL),
        Err(NegotiationError::NoAudio)
    );
}

#[test]
fn second_audio_stream_is_rejected_in_place() {
    let offer = "v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nc=IN IP4 192.0.2.1\nt=0 0\n\
                 m=video 5002 RTP/AVP 31\nm=audio 5000 RTP/AVP 18 8\nm=audio 5004 RTP/AVP 0\n";
    let (ans, n) = answer(&parse(offer), &local(), ALL).unwrap();
    assert_eq!(n.remote, sock("192.0.2.1:5000"));
    let ports: Vec<u16> = ans.media.iter().map(|m| m.port).collect();
    assert_eq!(ports, [0, 20000, 0]);
    assert_eq!(ans.media[0].media, "video");
}

#[test]
fn host_name_connection_is_malformed_for_negotiation() {
    let offer =
        RFC4317_AUDIO_VIDEO.replace("c=IN IP4 192.0.2.101", "c=IN IP4 host.atlanta.example.com");
    let err = answer(&parse(&offer), &local(), ALL).unwrap_err();
    assert!(matches!(err, NegotiationError::Malformed(_)));
    assert_eq!(err.sip_status(), 400);
}

#[test]
fn rfc3264_direction_answers_and_hold() {
    for (offered, answered, hold) in [
        ("sendrecv", Direction::SendRecv, false),
        ("sendonly", Direction::RecvOnly, true),
        ("recvonly", Direction::SendOnly, false),
        ("inactive", Direction::Inactive, true),
    ] {
        let offer = parse(&format!("{SIPP}a={offered}\r\n"));
        assert_eq!(is_hold(&offer), hold, "{offered}");
        let (ans, n) = answer(&offer, &local(), ALL).unwrap();
        assert_eq!(n.direction, answered, "{offered}");
        assert_eq!(ans.media[0].direction_attr(), Some(answered));
    }
}

#[test]
fn rfc2543_legacy_hold_with_null_address() {
    let offer = parse(&SIPP.replace("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0"));
    assert!(is_hold(&offer));
    let (_, n) = answer(&offer, &local(), ALL).unwrap();
    assert_eq!(n.direction, Direction::RecvOnly);
    assert!(n.remote.ip().is_unspecified());
}

#[test]
fn chrome_secure_offer_is_refused_without_srtp() {
    let offer = parse(CHROME);
    assert_eq!(
        answer(&offer, &local(), ALL),
        Err(NegotiationError::UnsupportedProtocol(
            "UDP/TLS/RTP/SAVPF".into()
        ))
    );
}

#[test]
fn chrome_codecs_pick_opus_with_48k_telephone_event() {
    let offer = parse(&chrome_plain());
    let (ans, n) = answer(&offer, &local(), ALL).unwrap();
    assert_eq!(
        (n.codec, n.pt, n.dtmf_pt, n.rtcp_mux),
        (Codec::Opus, 111, Some(110), true)
    );
    assert_eq!(n.remote, sock("192.0.2.50:40000"));
    let m = &ans.media[0];
    assert_eq!(m.protocol, "RTP/AVPF");
    assert_eq!(
        m.rtpmap(111).unwrap().to_owned(),
        RtpMap {
            pt: 111,
            encoding: "opus".into(),
            clock_rate: 48000,
            channels: Some(2),
        }
    );
    assert!(m.fmtp(111).unwrap().contains("useinbandfec=1"));
    assert!(m.rtcp_mux());
    // Without Opus: PCMU (the first G.711 in Chrome's order) with telephone-event/8000.
    let (_, n) = answer(&offer, &local(), &[Codec::Pcma, Codec::Pcmu]).unwrap();
    assert_eq!((n.codec, n.pt, n.dtmf_pt), (Codec::Pcmu, 0, Some(126)));
}

// --- offer/answer (UAC side) ----------------------------------------------------------------

fn our_offer() -> SessionDescription {
    create_offer(&local(), &[Codec::Opus, Codec::Pcma], Direction::SendRecv)
}

fn their_answer(media: &str) -> SessionDescription {
    parse(&format!(
        "v=0\no=peer 9 9 IN IP4 192.0.2.9\ns=-\nc=IN IP4 192.0.2.9\nt=0 0\n{media}"
    ))
}

#[test]
fn create_offer_lists_prefs_then_dtmf() {
    let offer = our_offer();
    let text = offer.to_string();
    assert_eq!(
        text,
        format!(
            "v=0\r\no=- 42 7 IN IP4 203.0.113.5\r\ns=-\r\nc=IN IP4 203.0.113.5\r\nt=0 0\r\n\
             m=audio 20000 RTP/AVP 111 8 101 110\r\n\
             a=rtpmap:111 opus/48000/2\r\na=fmtp:111 {OPUS_FMTP}\r\na=rtpmap:8 PCMA/8000\r\n\
             a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n\
             a=rtpmap:110 telephone-event/48000\r\na=fmtp:110 0-16\r\n\
             a=ptime:20\r\na=rtcp-mux\r\na=sendrecv\r\n"
        )
    );
    roundtrips(&offer);
    let g711 = create_offer(&local(), &[Codec::Pcmu], Direction::SendOnly);
    assert_eq!(g711.media[0].payload_types(), &[0, 101]);
    assert!(is_hold(&g711));
    // Empty prefs: all our codecs.
    assert_eq!(
        create_offer(&local(), &[], Direction::SendRecv).media[0].payload_types(),
        &[0, 8, 111, 101, 110]
    );
}

#[test]
fn negotiated_from_answer_reads_our_payload_types() {
    let ans = their_answer(
        "m=audio 30000 RTP/AVP 8 101\na=rtpmap:8 PCMA/8000\na=rtpmap:101 telephone-event/8000\na=ptime:30\n",
    );
    let n = negotiated_from_answer(&our_offer(), &ans).unwrap();
    assert_eq!(
        n,
        Negotiated {
            codec: Codec::Pcma,
            pt: 8,
            dtmf_pt: Some(101),
            remote: sock("192.0.2.9:30000"),
            direction: Direction::SendRecv,
            ptime: 30,
            rtcp_mux: false,
            srtp: None,
        }
    );
    let ans = their_answer("m=audio 30000 RTP/AVP 111 110\na=rtcp-mux\na=recvonly\n");
    let n = negotiated_from_answer(&our_offer(), &ans).unwrap();
    assert_eq!(
        (n.codec, n.dtmf_pt, n.rtcp_mux),
        (Codec::Opus, Some(110), true)
    );
    assert_eq!(n.direction, Direction::SendOnly);
}

#[test]
fn negotiated_from_answer_errors() {
    let offer = our_offer();
    assert_eq!(
        negotiated_from_answer(&offer, &their_answer("m=audio 30000 RTP/AVP 0\n")),
        Err(NegotiationError::UnofferedPayloadType(0))
    );
    assert_eq!(
        negotiated_from_answer(&offer, &their_answer("m=audio 0 RTP/AVP 8\n")),
        Err(NegotiationError::Rejected)
    );
    assert_eq!(
        negotiated_from_answer(&offer, &their_answer("m=audio 30000 RTP/AVP 101\n")),
        Err(NegotiationError::NoCommonCodec)
    );
    assert!(matches!(
        negotiated_from_answer(&offer, &their_answer("m=video 30000 RTP/AVP 8\n")),
        Err(NegotiationError::Malformed(_))
    ));
    assert!(matches!(
        negotiated_from_answer(
            &offer,
            &their_answer("m=audio 1 RTP/AVP 8\nm=video 0 RTP/AVP 31\n")
        ),
        Err(NegotiationError::Malformed(_))
    ));
}

#[test]
fn offer_answer_between_two_legs_agree() {
    let mut a = local();
    let mut b = LocalMedia {
        addr: "198.51.100.7".parse().unwrap(),
        port: 30000,
        session_id: 99,
        version: 1,
        srtp_key: [4; 30],
    };
    for prefs_b in [ALL, &[Codec::Pcma][..], &[Codec::Opus][..]] {
        let offer = create_offer(
            &a,
            &[Codec::Opus, Codec::Pcmu, Codec::Pcma],
            Direction::SendRecv,
        );
        let (ans, nb) = answer(&parse(&offer.to_string()), &b, prefs_b).unwrap();
        let na = negotiated_from_answer(&offer, &parse(&ans.to_string())).unwrap();
        assert_eq!((na.codec, na.pt, na.dtmf_pt), (nb.codec, nb.pt, nb.dtmf_pt));
        assert_eq!(na.remote, SocketAddr::new(b.addr, b.port));
        assert_eq!(nb.remote, SocketAddr::new(a.addr, a.port));
        assert!(na.rtcp_mux && nb.rtcp_mux);
        a.next_version();
        b.next_version();
    }
    assert_eq!((a.version, b.version), (10, 4));
}

#[test]
fn hold_and_resume_reoffers_bump_the_version() {
    let offer = parse(CARRIER);
    let held = with_direction(&offer, Direction::SendOnly);
    assert_eq!(held.origin.session_version, 1723);
    assert!(is_hold(&held));
    assert_eq!(
        held.media[0]
            .attributes
            .iter()
            .filter(|a| matches!(a, Attribute::Direction(_)))
            .count(),
        1
    );
    let resumed = with_direction(&held, Direction::SendRecv);
    assert_eq!(resumed.origin.session_version, 1724);
    assert!(!is_hold(&resumed));
    // Session-level direction is replaced by the media-level one.
    let s = parse(
        "v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nc=IN IP4 192.0.2.1\nt=0 0\na=inactive\nm=audio 5000 RTP/AVP 0\nm=video 0 RTP/AVP 31\n",
    );
    let r = with_direction(&s, Direction::SendRecv);
    assert_eq!(r.direction_attr(), None);
    assert_eq!(r.media[0].direction_attr(), Some(Direction::SendRecv));
    assert_eq!(r.media[1].direction_attr(), None);
    roundtrips(&r);
}

/// SDES (RFC 4568 §9.1's shape): an `RTP/SAVP` offer with an MKI line we cannot honour and
/// one we can. The answer keeps the profile, takes the usable line's tag and suite, and gives
/// the leg's own key; the negotiated keys are ours and theirs.
#[test]
fn sdes_srtp_offer_is_answered_with_our_key_for_the_first_usable_line() {
    let offer = parse(
        "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
         m=audio 49170 RTP/SAVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n\
         a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:4\r\n\
         a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj|2^20\r\n",
    );
    let (ans, n) = answer(&offer, &local(), ALL).unwrap();
    let keys = n.srtp.expect("an SRTP leg");
    assert_eq!(
        keys.suite,
        crate::sdp::crypto::SrtpSuite::AesCm128HmacSha1_32
    );
    assert_eq!(keys.local, local().srtp_key);
    assert_eq!(
        crate::sdp::crypto::Crypto::parse(
            "2 AES_CM_128_HMAC_SHA1_32 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj"
        )
        .unwrap()
        .key,
        keys.remote
    );
    let m = &ans.media[0];
    assert_eq!(m.protocol, "RTP/SAVP");
    let text = ans.to_string();
    let ours = crate::sdp::crypto::Crypto {
        tag: 2,
        suite: keys.suite,
        key: local().srtp_key,
    };
    assert!(
        text.contains(&format!("a=crypto:{}\r\n", ours.value())),
        "{text}"
    );
    assert_eq!(text.matches("a=crypto").count(), 1, "{text}");
    // The same leg answers the same way again (183 and 200, re-INVITEs).
    let (again, n2) = answer(&offer, &local(), ALL).unwrap();
    assert_eq!(n2.srtp, n.srtp);
    assert_eq!(again.media[0], ans.media[0]);
    // A secure offer with no line we can use is refused like any unsupported profile.
    let unusable = parse(
        "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
         m=audio 49170 RTP/SAVP 0\r\n\
         a=crypto:1 F8_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR\r\n",
    );
    assert_eq!(
        answer(&unusable, &local(), ALL),
        Err(NegotiationError::UnsupportedProtocol("RTP/SAVP".into()))
    );
    // Plain offers stay plain.
    let (_, plain) = answer(&parse(&chrome_plain()), &local(), ALL).unwrap();
    assert_eq!(plain.srtp, None);
}
