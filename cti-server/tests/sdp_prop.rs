//! Property tests of the SDP module (RFC 4566 parse / print, RFC 3264 offer/answer).
//!
//! (a) `SessionDescription::parse` never panics on arbitrary strings or on mutated valid
//!     descriptions, and whatever it accepts prints to text that parses back to the same value;
//! (b) `answer`, `negotiated_from_answer` and `is_hold` never panic on whatever parses, and an
//!     answer has one `m=` line per offered one and prints back to itself;
//! (c) offers we generate for any preference list and direction round-trip, and the two legs
//!     of an offer/answer exchange agree on codec, payload types and addresses.
//!
//! Case counts keep a debug run short; `PROPTEST_CASES` raises them for a soak run.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use cti_server::sdp::{
    Codec, Direction, LocalMedia, SessionDescription, answer, create_offer, is_hold,
    negotiated_from_answer, with_direction,
};
use proptest::prelude::*;
use proptest::test_runner::Config;

fn config(cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

const SEEDS: &[&str] = &[
    "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
     m=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
    "v=0\no=SBC 1721 1722 IN IP4 198.51.100.20\ns=SIP Call\nc=IN IP4 198.51.100.21\nt=0 0\n\
     m=audio 31000 RTP/AVP 8 0 18 101\na=rtpmap:8 PCMA/8000\na=rtpmap:0 PCMU/8000\n\
     a=rtpmap:18 G729/8000\na=fmtp:18 annexb=no\na=rtpmap:101 telephone-event/8000\n\
     a=fmtp:101 0-15\na=ptime:20\na=maxptime:40\na=sendrecv\n",
    "v=0\r\no=alice 2890844526 2890844526 IN IP4 192.0.2.101\r\ns=\r\nc=IN IP4 192.0.2.101\r\n\
     t=0 0\r\nm=audio 49170 RTP/AVP 0 8 97\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
     a=rtpmap:97 iLBC/8000\r\nm=video 51372 RTP/AVP 31 32\r\na=rtpmap:31 H261/90000\r\n\
     a=rtpmap:32 MPV/90000\r\n",
    "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n\
     a=msid-semantic: WMS\r\nm=audio 40000 RTP/AVPF 111 63 9 0 8 13 110 126\r\n\
     c=IN IP6 2001:db8::50\r\na=rtcp:40001 IN IP6 2001:db8::50\r\na=ice-ufrag:Zx3p\r\na=mid:0\r\n\
     a=sendonly\r\na=rtcp-mux\r\na=rtpmap:111 opus/48000/2\r\na=rtcp-fb:111 transport-cc\r\n\
     a=fmtp:111 minptime=10;useinbandfec=1\r\na=rtpmap:63 red/48000/2\r\na=fmtp:63 111/111\r\n\
     a=rtpmap:9 G722/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
     a=rtpmap:13 CN/8000\r\na=rtpmap:110 telephone-event/48000\r\n\
     a=rtpmap:126 telephone-event/8000\r\n",
    "v=0\no=- 1 1 IN IP4 host.example.com\ns=-\ni=info\nu=http://x\ne=a@b\np=+1\n\
     c=IN IP4 224.2.1.1/127/3\nb=AS:64\nt=0 0\nr=7d 1h 0 25h\nz=0 0\nk=prompt\na=recvonly\n\
     m=audio 0 RTP/AVP\nm=application 5000 UDP/DTLS/SCTP webrtc-datachannel\n\
     c=IN IP4 0.0.0.0\na=sctp-port:5000\n",
];

/// Pieces that make mutations hit the grammar rather than only break it.
const PIECES: &[&str] = &[
    "\n",
    "\r\n",
    "\r",
    " ",
    "=",
    ":",
    "/",
    "0",
    "127",
    "128",
    "65535",
    "65536",
    "a=",
    "m=",
    "c=",
    "v=0",
    "t=0 0",
    "IN IP4 ",
    "IN IP6 ",
    "::",
    "0.0.0.0",
    "RTP/AVP",
    "rtpmap:",
    "fmtp:",
    "ptime:",
    "rtcp:",
    "rtcp-mux",
    "sendonly",
    "inactive",
    "opus/48000/2",
    "telephone-event/8000",
    "\u{e9}",
    "\u{0}",
];

#[derive(Debug, Clone)]
enum Edit {
    Insert(usize, &'static str),
    Delete(usize, usize),
    DupLine(usize),
    DropLine(usize),
    SwapLines(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), proptest::sample::select(PIECES)).prop_map(|(i, p)| Edit::Insert(i, p)),
        (any::<usize>(), 1usize..8).prop_map(|(i, n)| Edit::Delete(i, n)),
        any::<usize>().prop_map(Edit::DupLine),
        any::<usize>().prop_map(Edit::DropLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::SwapLines(a, b)),
    ]
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut s = text.to_owned();
    for e in edits {
        match *e {
            Edit::Insert(i, p) => {
                let i = floor_char_boundary(&s, i % (s.len() + 1));
                s.insert_str(i, p);
            }
            Edit::Delete(i, n) => {
                let a = floor_char_boundary(&s, i % (s.len() + 1));
                let b = floor_char_boundary(&s, a + n);
                s.replace_range(a..b, "");
            }
            Edit::DupLine(i) | Edit::DropLine(i) | Edit::SwapLines(i, _) => {
                let mut lines: Vec<String> = s.split('\n').map(str::to_owned).collect();
                let n = lines.len();
                let i = i % n;
                match *e {
                    Edit::DupLine(_) => lines.insert(i, lines[i].clone()),
                    Edit::DropLine(_) => {
                        lines.remove(i);
                    }
                    Edit::SwapLines(_, j) => lines.swap(i, j % n),
                    _ => unreachable!("outer match arm"),
                }
                s = lines.join("\n");
            }
        }
    }
    s
}

fn local(port: u16) -> LocalMedia {
    LocalMedia {
        addr: IpAddr::V4(Ipv4Addr::new(203, 0, 113, 5)),
        port,
        session_id: 1,
        version: 1,
        srtp_key: [7; 30],
    }
}

/// (a) and (b) for one input.
fn check(text: &str) -> Result<(), TestCaseError> {
    let Ok(sd) = SessionDescription::parse(text) else {
        return Ok(());
    };
    let printed = sd.to_string();
    let again = SessionDescription::parse(&printed);
    prop_assert_eq!(again.as_ref(), Ok(&sd), "printed:\n{}", printed);

    let _ = is_hold(&sd);
    let _ = with_direction(&sd, Direction::SendOnly);
    if let Ok((ans, _)) = answer(&sd, &local(20000), &[Codec::Pcmu, Codec::Pcma, Codec::Opus]) {
        prop_assert_eq!(ans.media.len(), sd.media.len());
        let text = ans.to_string();
        let reparsed = SessionDescription::parse(&text);
        prop_assert_eq!(reparsed.as_ref(), Ok(&ans));
    }
    // Whatever parsed, taken as an answer to itself or to our offer.
    let _ = negotiated_from_answer(&sd, &sd);
    let offer = create_offer(&local(20000), &[], Direction::SendRecv);
    let _ = negotiated_from_answer(&offer, &sd);
    Ok(())
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn arbitrary_strings_never_panic(s in any::<String>()) {
        check(&s)?;
    }

    #[test]
    fn sdp_alphabet_strings_never_panic(
        s in "(v=0\n)?([a-z]=[ -~]{0,30}(\r?\n))*",
    ) {
        check(&s)?;
    }

    #[test]
    fn mutated_seeds_never_panic_and_roundtrip(
        seed in proptest::sample::select(SEEDS),
        edits in proptest::collection::vec(edit(), 1..6),
    ) {
        check(&apply(seed, &edits))?;
    }

    #[test]
    fn generated_offers_roundtrip_and_both_legs_agree(
        prefs in proptest::sample::subsequence(vec![Codec::Pcmu, Codec::Pcma, Codec::Opus], 0..=3)
            .prop_shuffle(),
        answer_prefs in proptest::sample::subsequence(vec![Codec::Pcmu, Codec::Pcma, Codec::Opus], 1..=3),
        dir in proptest::sample::select(&[
            Direction::SendRecv, Direction::SendOnly, Direction::RecvOnly, Direction::Inactive,
        ][..]),
        v6 in any::<bool>(),
        port_a in 1u16..=u16::MAX,
        port_b in 1u16..=u16::MAX,
        sid in any::<u64>(),
        version in any::<u64>(),
    ) {
        let mut a = local(port_a);
        a.session_id = sid;
        a.version = version;
        if v6 {
            a.addr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
        }
        let offer = create_offer(&a, &prefs, dir);
        let text = offer.to_string();
        let parsed = SessionDescription::parse(&text);
        prop_assert_eq!(parsed.as_ref(), Ok(&offer));
        prop_assert_eq!(is_hold(&offer), matches!(dir, Direction::SendOnly | Direction::Inactive));

        let offered = if prefs.is_empty() { vec![Codec::Pcmu, Codec::Pcma, Codec::Opus] } else { prefs.clone() };
        match answer(&offer, &local(port_b), &answer_prefs) {
            Ok((ans, nb)) => {
                // Offer order wins among what the answerer accepts.
                let expected = offered.iter().find(|c| answer_prefs.contains(c));
                prop_assert_eq!(Some(&nb.codec), expected);
                prop_assert_eq!(nb.direction, dir.reverse());
                prop_assert_eq!(nb.remote, SocketAddr::new(a.addr, port_a));
                let na = negotiated_from_answer(&offer, &ans).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!((na.codec, na.pt, na.dtmf_pt, na.rtcp_mux), (nb.codec, nb.pt, nb.dtmf_pt, nb.rtcp_mux));
                prop_assert_eq!(na.direction, dir);
                prop_assert_eq!(na.remote, SocketAddr::new(local(port_b).addr, port_b));
            }
            Err(e) => {
                prop_assert!(!offered.iter().any(|c| answer_prefs.contains(c)), "{}", e);
            }
        }
    }
}
